"""An INT8 model's graph steps channels-last on ONNX Runtime's CPU: the same classifier, with the
adjacency requantized per tensor; the file on disk untouched; steps off the pattern left alone."""

import hashlib

import numpy as np
import onnx
import pytest

from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.export.quantize import quantize_int8
from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.onnx.int8_steps import graph_steps_channels_last
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier


@pytest.fixture(scope="module")
def int8_model(demo_models, real_windows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-steps")
    return quantize_int8(demo_models[1], folder / "int8.onnx", real_windows[:8], "minmax", target="onnxruntime")


def test_every_quantized_step_is_rewritten_and_the_classifier_agrees(int8_model, real_windows):
    digest = hashlib.sha256(int8_model.read_bytes()).hexdigest()
    with OnnxClassifier(int8_model, threads=2) as steps, \
            OnnxClassifier(int8_model, threads=2, channels_last_steps=False) as export_form:
        assert (steps.steps_channels_last, export_form.steps_channels_last) == (20, 0)
        probs, reference = steps.predict(real_windows), export_form.predict(real_windows)
    assert np.abs(probs - reference).max() <= 2e-4  # only the adjacency's rounding changes
    assert (probs.argmax(1) == reference.argmax(1)).all()
    assert hashlib.sha256(int8_model.read_bytes()).hexdigest() == digest


def test_a_static_batch_model_runs_with_channels_last_steps(demo_models, real_windows, tmp_path):
    """ONNX Runtime's NHWC transformer stays on for rewritten models: a static batch, where the
    export's steps made it transpose every block's output back, runs and agrees."""
    static = export_onnx(load_checkpoint(demo_models[0]), tmp_path / "static.onnx",
                         ExportOptions(persons=1, dynamic_batch=False, batch=2), validate=False)[0]
    int8 = quantize_int8(static, tmp_path / "static-int8.onnx", real_windows[:8], "minmax", target="onnxruntime")
    with OnnxClassifier(int8, threads=2) as steps, OnnxClassifier(int8, threads=2, channels_last_steps=False) as plain:
        assert steps.steps_channels_last == 20 and steps.input_shape[0] == 2
        assert np.abs(steps.predict(real_windows[:2]) - plain.predict(real_windows[:2])).max() <= 2e-4


def test_steps_off_the_pattern_and_float_models_are_left_alone(int8_model, demo_models):
    model = onnx.load(str(int8_model))
    permute = next(n for n in model.graph.node if n.op_type == "Transpose"
                   and list(n.attribute[0].ints) == [0, 2, 3, 1, 4])
    permute.attribute[0].ints[:] = [0, 2, 1, 3, 4]  # not the export's graph step any more
    assert graph_steps_channels_last(model) == 19
    assert graph_steps_channels_last(model) == 0  # the rewritten steps are not matched again
    assert graph_steps_channels_last(onnx.load(str(demo_models[1]))) == 0  # float: no quantized steps
