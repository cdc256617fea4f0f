"""stgcn-rt serve: a real tritonserver (NVIDIA PyTriton) on 127.0.0.1, driven by stgcn-rt's clients.

PyTriton and tritonclient[grpc] need protobuf >= 6, which mediapipe cannot share, so the server runs
from the Python named in STGCN_RT_SERVE_PYTHON (scripts/test.sh builds .venv-triton for it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_runner

from stgcn_rt.cli import cli
from stgcn_rt.runtime import load_classifier
from stgcn_rt.runtime.scheduler import BatchScheduler

SERVE_PYTHON = os.environ.get("STGCN_RT_SERVE_PYTHON")
pytestmark = pytest.mark.skipif(not SERVE_PYTHON, reason="needs a Python with nvidia-pytriton in "
                                "STGCN_RT_SERVE_PYTHON (scripts/test.sh makes one)")
pytest.importorskip("tritonclient.http")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`stgcn-rt serve MODEL` in its own process group, so that kill() takes tritonserver with it."""

    def __init__(self, model: Path, log: Path) -> None:
        self.model, self.log = model, log
        self.http_port, self.grpc_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/stgcn"

    @property
    def grpc(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}/stgcn"

    def start(self, timeout_s: float = 240) -> None:
        import tritonclient.http as http

        command = [SERVE_PYTHON, "-m", "stgcn_rt.cli", "serve", str(self.model), "--http-port", str(self.http_port),
                   "--grpc-port", str(self.grpc_port), "--max-batch", "16", "--queue-delay-us", "1000",
                   "--triton-log", str(self.log.with_name("triton.log"))]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = http.InferenceServerClient(f"127.0.0.1:{self.http_port}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"stgcn-rt serve exited: {self.log.read_text()[-3000:]}")
            try:
                if client.is_model_ready("stgcn"):
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.5)
        raise AssertionError(f"stgcn-rt serve not ready after {timeout_s} s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int | None:
        """SIGTERM, as a service manager stops it; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        try:  # anything the server left in its group
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.returncode


@pytest.fixture(scope="module")
def server(demo_models, tmp_path_factory):
    ckpt, _ = demo_models
    running = LocalServer(ckpt, tmp_path_factory.mktemp("serve") / "serve.log")
    running.start()
    yield running
    assert running.stop() == 0, running.log.read_text()[-2000:]
    assert "Traceback" not in running.log.read_text()


@pytest.fixture(scope="module")
def local(demo_models):
    ckpt, _ = demo_models
    with load_classifier(ckpt) as model:
        yield model


def test_listens_on_loopback_only(server):
    with socket.socket() as probe:
        probe.settimeout(1)
        # the machine's other addresses are refused; loopback answers
        outside = socket.gethostbyname(socket.gethostname())
        if not outside.startswith("127."):
            assert probe.connect_ex((outside, server.http_port)) != 0
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=2):
        pass


def test_concurrent_clients_get_the_local_predictions(server, local, real_windows):
    rng = np.random.default_rng(0)
    work = [[(real_windows[rng.integers(0, len(real_windows), rng.integers(1, 7))]
              * rng.uniform(0.6, 1.0)).astype(np.float32) for _ in range(2)] for _ in range(8)]
    worst, errors = [0.0] * len(work), []

    def client(i: int) -> None:
        try:
            with load_classifier(server.http) as remote:
                assert remote.classes == ["normal", "shoplifting"]
                for batch in work[i]:
                    worst[i] = max(worst[i], float(np.abs(remote.predict(batch) - local.predict(batch)).max()))
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert max(worst) <= 1e-4


def test_bench_through_the_server_beside_the_in_process_scheduler(server, tmp_path):
    result = cli_runner().invoke(cli, ["bench", "--model", server.http, "--backends", "onnxruntime,triton",
                                      "--batch", "1", "--cameras", "none", "--clients", "1,3", "--iterations", "5",
                                      "--seconds", "0.5", "--out", str(tmp_path), "--name", "t"])
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "t.json").read_text())
    assert [r["backend"] for r in report["latency"]] == ["onnxruntime cpu", "triton server"]
    rows = {(r["design"], r["clients"]): r for r in report["clients"]}
    assert set(rows) == {(d, n) for d in ("triton", "scheduler") for n in (1, 3)}
    assert all(r["completed"] > 0 and r["errors"] == 0 for r in rows.values())
    assert "## Concurrent clients" in (tmp_path / "t.md").read_text()


def test_grpc_client_from_the_serve_environment(server, local, real_windows, tmp_path):
    np.save(tmp_path / "windows.npy", real_windows)
    code = ("import sys, json, numpy as np; from stgcn_rt.runtime import load_classifier; "
            "m = load_classifier(sys.argv[1]); p = m.predict(np.load(sys.argv[2])); "
            "np.save(sys.argv[3], p); print(json.dumps(m.classes))")
    out = subprocess.run([SERVE_PYTHON, "-c", code, server.grpc, str(tmp_path / "windows.npy"),
                          str(tmp_path / "probs.npy")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == ["normal", "shoplifting"]
    assert np.abs(np.load(tmp_path / "probs.npy") - local.predict(real_windows)).max() <= 1e-4


def test_grpc_client_beside_mediapipe(server, local, real_windows):
    """The camera side's environment (MediaPipe, protobuf 4) speaks gRPC too."""
    pytest.importorskip("tritonclient.grpc")
    with load_classifier(server.grpc) as remote:
        assert remote.classes == ["normal", "shoplifting"]
        assert np.abs(remote.predict(real_windows) - local.predict(real_windows)).max() <= 1e-4


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_pipeline_on_a_real_video_through_the_server(server, tmp_path, videos, scheme):
    if scheme == "grpc":
        pytest.importorskip("tritonclient.grpc")
    events = tmp_path / "events.jsonl"
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model",
                                      getattr(server, scheme), "--stride", "50", "--events", str(events)])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    predictions = [e for e in lines if e["kind"] == "prediction"]
    assert len(predictions) == 4  # full windows: frames 150, 200, 250, 300
    assert lines[0]["kind"] == "run" and lines[0]["untrained"] is True  # the served model's config says so


def test_a_server_restart_mid_run_loses_no_window(demo_models, local, real_windows, tmp_path):
    """Windows keep coming while the server (of the ONNX export, this time) is killed and restarted: each
    one ends as a result equal to the local one or as a counted failure, and results flow again after the
    restart."""
    _, onnx_path = demo_models
    expected = local.predict(real_windows)
    restarting = LocalServer(onnx_path, tmp_path / "serve.log")
    restarting.start()
    outcomes: list[tuple[int, str, float]] = []  # (index, "ok"/"failed", diff)
    try:
        with load_classifier(restarting.http, retries=2, backoff_s=0.2, timeout_s=5) as remote, \
                BatchScheduler(remote, max_batch=8, max_wait_ms=5) as scheduler:
            futures = []
            killed_at = restarted_at = None
            start = time.monotonic()
            index = 0
            while True:
                window = real_windows[index % len(real_windows)]
                futures.append((index, scheduler.submit(index % 4, window)))
                index += 1
                elapsed = time.monotonic() - start
                if killed_at is None and elapsed > 2:
                    restarting.kill()
                    killed_at = index
                elif killed_at is not None and restarted_at is None and index > killed_at + 20:
                    restarting.start()
                    restarted_at = index
                elif restarted_at is not None and index > restarted_at + 40:
                    break
                time.sleep(0.05)
            for i, future in futures:
                try:
                    probs = future.result(timeout=60).probabilities
                except Exception:
                    outcomes.append((i, "failed", 0.0))
                    continue
                outcomes.append((i, "ok", float(np.abs(probs - expected[i % len(real_windows)]).max())))
    finally:
        restarting.stop()
    assert len(outcomes) == len(futures)  # every window accounted for
    ok = [o for o in outcomes if o[1] == "ok"]
    assert max(d for _, _, d in ok) <= 1e-4
    assert any(i < killed_at for i, _, _ in ok) and any(i >= restarted_at for i, _, _ in ok)
    assert any(status == "failed" for _, status, _ in outcomes)  # the outage is visible, not hidden
    assert scheduler.stats.totals()["failed"] + scheduler.stats.totals()["completed"] >= len(futures)


def test_a_busy_port_is_one_line(demo_models):
    ckpt, _ = demo_models
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([SERVE_PYTHON, "-m", "stgcn_rt.cli", "serve", str(ckpt), "--http-port", str(port),
                              "--grpc-port", str(free_port())], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port} (Address already in use): "
                                               "choose another --http-port or stop what uses it"]
