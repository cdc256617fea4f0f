"""Graph steps aggregate-first for ONNX Runtime's CPU: the same function as the export's form."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from stgcn_rt.export.quantize import quantize_int8
from stgcn_rt.onnx.aggregate import aggregate_graph_steps_first
from stgcn_rt.onnx.batchnorm import fold_graph_batchnorms
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier


def _run(model: onnx.ModelProto, windows: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: windows})[0]


def _graph_step_transposes(model: onnx.ModelProto) -> int:
    return sum(1 for n in model.graph.node if n.op_type == "Transpose"
               and list(next(a.ints for a in n.attribute if a.name == "perm")) == [0, 2, 3, 1, 4])


@pytest.mark.parametrize("fold_first", [False, True], ids=["batchnorm", "batchnorm-folded"])
def test_every_graph_step_is_rewritten_and_computes_the_same(demo_models, real_windows, fold_first):
    """Both streams' ten graph steps, followed by their BatchNorm or (after the INT8 pipeline's fold)
    by an Add of the shift; logits within float rounding of the export's."""
    model = onnx.load(str(demo_models[1]))
    if fold_first:
        fold_graph_batchnorms(model)
    windows = real_windows[:4].astype(np.float32)
    expected = _run(model, windows)
    assert _graph_step_transposes(model) == 20
    assert aggregate_graph_steps_first(model) == 20
    onnx.checker.check_model(model)
    assert _graph_step_transposes(model) == 0
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 2  # the input's, per stream
    np.testing.assert_allclose(_run(model, windows), expected, rtol=1e-5, atol=1e-6)
    assert aggregate_graph_steps_first(model) == 0  # nothing left to rewrite


def test_an_fp16_export_is_left_as_exported(demo_models, tmp_path):
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint

    path, _ = export_onnx(load_checkpoint(demo_models[0]), tmp_path / "fp16.onnx",
                          ExportOptions(precision="fp16", dynamic_batch=True), validate=False)
    model = onnx.load(str(path))
    assert aggregate_graph_steps_first(model) == 0
    with OnnxClassifier(path, threads=2) as runner:
        assert runner.steps_aggregated_first == 0
        assert runner.predict(np.random.default_rng(0).random((1, 3, 150, 33, 1), np.float32)).shape == (1, 2)


def test_a_step_off_the_pattern_is_left_as_exported(demo_models):
    model = onnx.load(str(demo_models[1]))
    transpose = next(n for n in model.graph.node if n.op_type == "Transpose"
                     and list(next(a.ints for a in n.attribute if a.name == "perm")) == [0, 2, 3, 1, 4])
    transpose.attribute[0].ints[:] = [0, 2, 1, 3, 4]
    assert aggregate_graph_steps_first(model) == 19


def test_the_runner_rewrites_float_models_only_and_can_be_told_not_to(demo_models, real_windows, tmp_path):
    int8 = quantize_int8(demo_models[1], tmp_path / "int8.onnx", real_windows[:8], "minmax", target="onnxruntime")
    windows = real_windows[:4]
    with OnnxClassifier(demo_models[1], threads=2) as first, \
            OnnxClassifier(demo_models[1], threads=2, aggregate_first=False) as exported, \
            OnnxClassifier(int8, threads=2) as quantized:
        counts = [runner.steps_aggregated_first for runner in (first, exported, quantized)]
        assert counts == [20, 0, 0]
        np.testing.assert_allclose(first.predict(windows), exported.predict(windows), atol=1e-6)
    assert _graph_step_transposes(onnx.load(str(demo_models[1]))) == 20  # the file stays as exported
