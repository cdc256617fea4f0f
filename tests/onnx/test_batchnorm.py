from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.export.quantize import quantize_int8
from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.onnx.batchnorm import fold_graph_batchnorms
from stgcn_rt.window import softmax


def _run(model: onnx.ModelProto | str, windows: np.ndarray, tmp_path, name: str) -> tuple[np.ndarray, list[str]]:
    """Outputs, and the operators ONNX Runtime's CPU provider actually runs after its own fusions."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(tmp_path / f"optimized_{name}.onnx")
    session = ort.InferenceSession(model.SerializeToString() if isinstance(model, onnx.ModelProto) else model,
                                   options, providers=["CPUExecutionProvider"], disabled_optimizers=["NhwcTransformer"])
    out = session.run(None, {session.get_inputs()[0].name: windows})[0]
    return out, [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def test_graph_batchnorms_fold_into_the_convolutions_and_the_int8_model_stays_in_8_bits(
        reference_checkpoint, real_windows, tmp_path):
    """Random BatchNorm statistics (reference checkpoint): the rewritten float model computes the same
    logits; every block's BatchNorm becomes a shift Add, and ONNX Runtime's INT8 form runs no float
    BatchNorm but the two input normalisations."""
    loaded = load_checkpoint(reference_checkpoint())
    path, _ = export_onnx(loaded, tmp_path / "fp32.onnx", ExportOptions(persons=1, dynamic_batch=True), validate=False)
    model = onnx.load(str(path))
    shifts = fold_graph_batchnorms(model)
    assert len(shifts) == 20  # ten blocks, two streams
    windows = real_windows[:4]
    reference, _ = _run(str(path), windows, tmp_path, "fp32")
    folded, ops = _run(model, windows, tmp_path, "folded")
    np.testing.assert_allclose(folded, reference, rtol=0, atol=2e-5)
    assert ops.count("BatchNormalization") == 2  # data_bn of each stream

    int8 = quantize_int8(path, tmp_path / "int8.onnx", real_windows[:16], "minmax", target="onnxruntime")
    assert {p.key: p.value for p in onnx.load(str(int8)).metadata_props}["int8_graph_batchnorm"] == "folded"
    quantized, ops = _run(str(int8), windows, tmp_path, "int8")
    assert ops.count("BatchNormalization") == 2 and ops.count("QLinearAdd") >= 20 and ops.count("Relu") < 20
    probs = [softmax(x) for x in (quantized, reference)]
    assert (probs[0].argmax(1) == probs[1].argmax(1)).all() and np.abs(probs[0] - probs[1]).max() < 0.05


def test_a_batchnorm_that_is_not_after_a_graph_step_is_left_alone(demo_models):
    model = onnx.load(str(demo_models[1]))
    before = [n.op_type for n in model.graph.node].count("BatchNormalization")
    fold_graph_batchnorms(model)
    after = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert before - len(after) == 20 and all("data_bn" in n.name for n in after)


def test_the_fold_can_be_switched_off(demo_models, real_windows, tmp_path):
    int8 = quantize_int8(demo_models[1], tmp_path / "int8.onnx", real_windows[:8], "minmax", target="onnxruntime",
                         fold_batchnorms=False)
    _, ops = _run(str(int8), real_windows[:2], tmp_path, "kept")
    assert ops.count("BatchNormalization") == 22  # every block's, in float, and data_bn
