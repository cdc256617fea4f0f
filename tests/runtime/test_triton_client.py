"""The Triton runner against a stand-in server that speaks Triton's HTTP/REST (KServe v2) protocol on
127.0.0.1, answering with a local model: same probabilities, clear errors, restarts ridden out.
(No real tritonserver runs here yet: see issue 9.)"""

import threading

import numpy as np
import pytest
from helpers import V2Server

pytest.importorskip("tritonclient.http")

from stgcn_rt.errors import StgcnError  # noqa: E402
from stgcn_rt.runtime import load_classifier  # noqa: E402


@pytest.fixture
def served(demo_models):
    _, onnx_path = demo_models
    local = load_classifier(onnx_path)
    server = V2Server(local)
    yield local, server
    server.stop()
    local.close()


def test_same_probabilities_through_triton(served, real_windows):
    local, server = served
    with load_classifier(f"http://127.0.0.1:{server.port}/stgcn") as remote:
        assert remote.classes == ["normal", "shoplifting"] and remote.input_shape == (None, 3, 150, 33, 1)
        assert remote.untrained  # the demo model's, as the server's config says
        probs = remote.predict(real_windows[:6])  # two requests: the server takes at most 4
        assert server.requests == 2
        assert np.abs(probs - local.predict(real_windows[:6])).max() <= 1e-6


def test_missing_server_and_model_are_one_line(served):
    _, server = served
    with pytest.raises(StgcnError, match=r"^the Triton server at triton http://127.0.0.1:\d+ has no ready model"):
        load_classifier(f"http://127.0.0.1:{server.port}/other", retries=0)
    with pytest.raises(StgcnError, match=r"^no Triton server answers at triton http://127.0.0.1:9"):
        load_classifier("http://127.0.0.1:9/stgcn", retries=1, backoff_s=0.05)
    with pytest.raises(StgcnError, match="write http://host:8000/MODEL"):
        load_classifier("http://127.0.0.1:8000/")
    with pytest.raises(StgcnError, match="cannot serve models from ftp://"):
        load_classifier("ftp://127.0.0.1/stgcn")


def test_a_server_restart_is_ridden_out(served, real_windows):
    local, server = served
    port = server.port
    remote = load_classifier(f"http://127.0.0.1:{port}/stgcn", retries=5, backoff_s=0.2)
    server.stop()
    restarted = []
    threading.Timer(0.5, lambda: restarted.append(V2Server(local, port=port))).start()
    try:
        probs = remote.predict(real_windows[:2])  # retried until the server is back
        assert np.abs(probs - local.predict(real_windows[:2])).max() <= 1e-6
        restarted[0].stop()
        with pytest.raises(StgcnError, match="failed after 6 tries"):
            remote.predict(real_windows[:1])
    finally:
        remote.close()
