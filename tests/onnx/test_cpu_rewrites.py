"""INT8 temporal convolutions routed to ONNX Runtime's integer GEMM: same values, same outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from stgcn_rt.export.quantize import quantize_int8
from stgcn_rt.onnx.cpu import cpu_has_amx_int8, route_wide_convs_to_gemm
from stgcn_rt.runtime.backends import onnxruntime_runner
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier


@pytest.fixture(scope="module")
def int8_model(demo_models, real_windows, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-kernels")
    return quantize_int8(demo_models[1], folder / "int8.onnx", real_windows[:8], "minmax", target="onnxruntime")


def _dequantized_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.output[0]: (init[n.input[0]].astype(np.float32) - init[n.input[2]].astype(np.float32).reshape(
        -1, *[1] * (init[n.input[0]].ndim - 1))) * init[n.input[1]].reshape(-1, *[1] * (init[n.input[0]].ndim - 1))
        for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
        and init[n.input[0]].ndim == 4}


def test_the_wide_temporal_convolutions_get_a_nonzero_zero_point_and_the_same_weights(int8_model):
    model = onnx.load(str(int8_model))
    before = _dequantized_weights(model)
    assert route_wide_convs_to_gemm(model) == 6  # 256 channels: blocks 7-9 of both streams
    after = _dequantized_weights(model)
    assert before.keys() == after.keys()
    for name, weight in before.items():
        np.testing.assert_array_equal(after[name], weight)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
               and init[n.input[0]].dtype == np.int8 and init[n.input[0]].ndim == 4]
    routed = [n for n in weights if init[n.input[2]].any()]
    assert len(routed) == 6 and len(weights) > 40
    assert all(init[n.input[0]].shape[2] == 9 and init[n.input[0]].shape[0] == 256 for n in routed)
    assert route_wide_convs_to_gemm(model) == 0  # already routed: nothing left to do


def test_a_weight_at_minus_128_cannot_shift_and_is_left_alone(int8_model):
    model = onnx.load(str(int8_model))
    init = {i.name: i for i in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
                and numpy_helper.to_array(init[n.input[0]]).shape[:3:2] == (256, 9))
    weight = numpy_helper.to_array(init[node.input[0]]).copy()
    weight.flat[0] = -128
    init[node.input[0]].CopyFrom(numpy_helper.from_array(weight, node.input[0]))
    assert route_wide_convs_to_gemm(model) == 5
    assert not numpy_helper.to_array(init[node.input[2]]).any()


def test_the_runner_gives_identical_outputs_both_ways(int8_model, real_windows):
    with OnnxClassifier(int8_model, threads=2, integer_gemm=True) as gemm, \
            OnnxClassifier(int8_model, threads=2, integer_gemm=False) as symmetric:
        assert (gemm.gemm_convolutions, symmetric.gemm_convolutions) == (6, 0)
        windows = real_windows[:4]
        np.testing.assert_array_equal(gemm.logits(windows), symmetric.logits(windows))


def test_the_default_follows_the_cpu(int8_model, demo_models, monkeypatch):
    monkeypatch.setattr(onnxruntime_runner, "cpu_has_amx_int8", lambda: True)
    with OnnxClassifier(int8_model) as runner, OnnxClassifier(demo_models[1]) as fp32:
        assert runner.gemm_convolutions == 6 and fp32.gemm_convolutions == 0
    monkeypatch.setattr(onnxruntime_runner, "cpu_has_amx_int8", lambda: False)
    with OnnxClassifier(int8_model) as runner:
        assert runner.gemm_convolutions == 0


@pytest.mark.parametrize("flags, expected", [("fpu avx512_vnni amx_bf16 amx_tile amx_int8", True),
                                             ("fpu avx512_vnni amx_bf16", False)])
def test_amx_is_read_from_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\n")
    assert cpu_has_amx_int8(cpuinfo) is expected
    assert cpu_has_amx_int8(tmp_path / "missing") is False
