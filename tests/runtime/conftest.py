import threading

import numpy as np
import pytest

from stgcn_rt.runtime.classifier import Classifier


class MeanClassifier(Classifier):
    """A tiny deterministic classifier: logits are per-window statistics, independent of batching."""

    name = "mean"

    def __init__(self, shape=(None, 3, 8, 5, 1), gate: threading.Event | None = None, fail_on=None):
        self.classes = ["low", "high"]
        self.input_shape = shape
        self.device = "cpu"
        self.gate = gate
        self.fail_on = fail_on
        self.batches = []

    def _logits(self, windows):
        if self.gate is not None:
            self.gate.wait(10)
        windows = np.asarray(windows, dtype=np.float32)
        if self.fail_on is not None and np.any(windows[:, 0, 0, 0, 0] == self.fail_on):
            raise RuntimeError("planted failure")
        self.batches.append(len(windows))
        mean = windows.reshape(len(windows), -1).mean(1)
        return np.stack([-mean, mean], axis=1).astype(np.float32)


@pytest.fixture
def mean_classifier():
    return MeanClassifier()


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory):
    """The demo checkpoint and its dynamic-batch ONNX export."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint

    folder = tmp_path_factory.mktemp("demo")
    ckpt = make_demo_checkpoint(folder / "demo.pt")
    onnx_path, _ = export_onnx(load_checkpoint(ckpt), folder / "demo.onnx",
                               ExportOptions(dynamic_batch=True), validate=False)
    return ckpt, onnx_path
