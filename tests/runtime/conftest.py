import pytest
from helpers import MeanClassifier


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
