"""TensorRT without a GPU: TensorRT-RTX parses and builds every exported model ahead of time on the
CPU; engine sidecars, version checks and missing-TensorRT errors (tests/test_typing.py type-checks
the adapter against the TensorRT 10 API)."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from stgcn_rt.errors import StgcnError
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.export.quantize import is_quantized, quantize_int8
from stgcn_rt.export.tensorrt_build import BuildOptions, build_engine, parse_size
from stgcn_rt.info import describe
from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.runtime import load_classifier
from stgcn_rt.runtime.backends.tensorrt_runner import check_sidecar


def require_rtx():
    if importlib.util.find_spec("tensorrt_rtx") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must prove the TensorRT build: pip install tensorrt-rtx")
        pytest.skip("tensorrt-rtx is not installed")


@pytest.fixture(scope="module")
def models(tmp_path_factory, real_windows):
    """fp32 and fp16 ONNX for M=1 and M=5, and an INT8 Q/DQ ONNX, from the demo checkpoint."""
    from stgcn_rt.model.checkpoint import make_demo_checkpoint

    folder = tmp_path_factory.mktemp("trt")
    loaded = load_checkpoint(make_demo_checkpoint(folder / "demo.pt"))
    out = {}
    for persons in (1, 5):
        for precision in ("fp32", "fp16"):
            out[(persons, precision)] = export_onnx(
                loaded, folder / f"m{persons}_{precision}.onnx",
                ExportOptions(persons=persons, precision=precision), validate=False)[0]
    out[(1, "int8")] = quantize_int8(out[(1, "fp32")], folder / "m1_int8.onnx", real_windows[:8], "minmax")
    out[(1, "int8-ort")] = quantize_int8(out[(1, "fp32")], folder / "m1_int8_ort.onnx", real_windows[:8], "minmax",
                                         target="onnxruntime")
    return out


@pytest.mark.parametrize("persons", [1, 5])
def test_fp16_engines_keep_normalisation_pooling_and_classifier_in_fp32(models, persons):
    """The layers stgcn-rt build pins to fp32 in an fp16 engine: data_bn, each stream's pooling sum and
    every layer after it (the scale, the person mean, the classifier, the streams' sum), none of a block."""
    require_rtx()
    import tensorrt_rtx as trt

    from stgcn_rt.export.tensorrt_build import _parse, fp32_layers

    _, network, _parser = _parse(trt, models[(persons, "fp32")], trt.Logger(trt.Logger.ERROR))
    layers = [network.get_layer(i) for i in fp32_layers(trt, network)]
    names = [layer.name for layer in layers]
    assert sum(layer.type == trt.LayerType.REDUCE for layer in layers) == (2 if persons == 1 else 4)
    assert [name for name in names if "fcn" in name] == ["origin_stream.fcn/Conv", "motion_stream.fcn/Conv"]
    assert sum("data_bn" in name for name in names) == 2
    assert network.get_layer(network.num_layers - 1).name in names  # the streams' sum, the output
    assert not any("st_gcn_networks" in name for name in names)


@pytest.mark.parametrize("persons, precision", [(1, "fp32"), (1, "fp16"), (1, "int8"), (5, "fp32"), (5, "fp16")])
def test_rtx_parses_and_builds_ahead_of_time(models, tmp_path, persons, precision):
    require_rtx()
    lines = []
    engine, sidecar = build_engine(models[(persons, precision)], tmp_path / "m.engine",
                                   BuildOptions(precision=precision, builder="rtx", compute_capability="sm86"),
                                   report=lines.append)
    assert engine.stat().st_size > 1_000_000
    saved = json.loads((tmp_path / "m.engine.json").read_text())
    assert saved == sidecar
    assert saved["tensorrt"] == "tensorrt_rtx" and saved["precision"] == precision
    assert saved["compute_capability"] == "86" and saved["classes"] == ["normal", "shoplifting"]
    assert saved["untrained"] is True  # the demo checkpoint's
    assert saved["inputs"] == [{"name": "input", "shape": [1, 3, 150, 33, persons], "dtype": "FLOAT"}]
    assert saved["outputs"][0]["name"] == "output" and saved["outputs"][0]["shape"] == [1, 2]
    assert any("Building engine" in line for line in lines)  # progress reached the user
    described = dict(describe(engine))  # stgcn-rt info, from the sidecar, without a GPU
    assert described["precision"] == precision and "compute capability 86" in described["built for"]
    assert described["inputs"] == f"input (1, 3, 150, 33, {persons}) float"


def test_rtx_builds_a_dynamic_batch_profile(tmp_path, demo_models):
    require_rtx()
    _, onnx_path = demo_models  # exported with --dynamic-batch
    lines = []
    _, sidecar = build_engine(onnx_path, tmp_path / "dyn.engine",
                              BuildOptions(precision="fp32", builder="rtx", compute_capability="sm86",
                                           max_batch=32, opt_batch=8), report=lines.append)
    assert sidecar["inputs"][0]["shape"][0] == -1
    assert "      dynamic batch: profile 1 / 8 / 32" in lines


def test_strongly_typed_builder_needs_the_precision_in_the_onnx(models, tmp_path):
    require_rtx()
    with pytest.raises(StgcnError, match="export with --precision fp16"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine", BuildOptions(precision="fp16", builder="rtx"))
    with pytest.raises(StgcnError, match="has no Q/DQ nodes"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine", BuildOptions(precision="int8", builder="rtx"))
    if not torch.cuda.is_available():
        with pytest.raises(StgcnError, match="no GPU here to build for: name the target with --compute-capability"):
            build_engine(models[(1, "fp32")], tmp_path / "m.engine", BuildOptions(precision="fp32", builder="rtx"))
    with pytest.raises(StgcnError, match="cannot target sm99"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine",
                     BuildOptions(precision="fp32", builder="rtx", compute_capability="sm99"))
    assert not (tmp_path / "m.engine").exists()


def test_build_input_errors(models, tmp_path):
    with pytest.raises(StgcnError, match="DLA runs fp16 or int8 only"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine", BuildOptions(precision="fp32", dla_core=0))
    with pytest.raises(StgcnError, match="not found"):
        build_engine(tmp_path / "none.onnx", tmp_path / "m.engine", BuildOptions())
    with pytest.raises(StgcnError, match="does not exist"):
        build_engine(models[(1, "fp32")], tmp_path / "no" / "m.engine", BuildOptions())


def test_missing_tensorrt_is_one_line(models, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None and hasattr(__import__("tensorrt"), "Builder"):
        pytest.skip("full TensorRT is installed here")
    with pytest.raises(StgcnError, match=r"^TensorRT is not installed \(tensorrt not importable\): on Jetson"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine", BuildOptions(builder="tensorrt"))


def test_int8_model_is_qdq_with_sensitive_layers_in_fp32(models):
    import onnx

    model = onnx.load(str(models[(1, "int8")]))
    assert is_quantized(models[(1, "int8")]) and not is_quantized(models[(1, "fp32")])
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["precision"] == "int8" and meta["persons"] == "1"
    quantized_inputs = {i for n in model.graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    for node in model.graph.node:
        if "data_bn" in node.name or "fcn" in node.name:
            assert not set(node.input) & quantized_inputs, node.name
    assert any(n.op_type == "Conv" and set(n.input) & quantized_inputs for n in model.graph.node)


def test_int8_runs_on_onnxruntime_and_keeps_decisions(models, real_windows):
    with load_classifier(models[(1, "fp32")]) as fp32, load_classifier(models[(1, "int8")]) as int8:
        a, b = fp32.predict(real_windows), int8.predict(real_windows)
    assert np.abs(a - b).max() < 0.05
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99


def test_int8_for_onnxruntime_fuses_into_integer_convolutions(models, real_windows, tmp_path):
    import onnx
    import onnxruntime as ort

    def optimized_ops(path):  # the graph ONNX Runtime's CPU provider actually runs
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"optimized_{path.stem}.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]

    for_cpu, for_trt = optimized_ops(models[(1, "int8-ort")]), optimized_ops(models[(1, "int8")])
    # every convolution but the two kept-fp32 classifiers (fcn) runs as an integer kernel on the CPU;
    # the TensorRT form leaves about half of them in float there
    assert for_cpu.count("Conv") == 2 and for_cpu.count("QLinearConv") >= 40
    assert for_trt.count("Conv") > 20 and for_trt.count("QLinearConv") < for_cpu.count("QLinearConv")
    with load_classifier(models[(1, "fp32")]) as fp32, load_classifier(models[(1, "int8-ort")]) as int8:
        a, b = fp32.predict(real_windows), int8.predict(real_windows)
    assert np.abs(a - b).max() < 0.05 and (a.argmax(1) == b.argmax(1)).mean() >= 0.99


def test_tensorrt_refuses_int8_made_for_onnxruntime(models, tmp_path):
    with pytest.raises(StgcnError, match="quantized for onnxruntime .* quantize the fp32 ONNX again with --target "
                                         "tensorrt"):
        build_engine(models[(1, "int8-ort")], tmp_path / "m.engine", BuildOptions(precision="int8", builder="rtx"))


def test_sidecar_mismatches_say_what_and_how_to_rebuild(tmp_path):
    engine = tmp_path / "model.engine"
    sidecar = {"tensorrt": "tensorrt", "tensorrt_version": "10.3.0", "compute_capability": "8.7",
               "gpu": "Orin", "onnx": "model.onnx"}
    with pytest.raises(StgcnError, match=r"built with tensorrt 10.3.0, this machine has 10.13.0: "
                                         r"rebuild it here: stgcn-rt build model.onnx -o model.engine"):
        check_sidecar(engine, sidecar, "10.13.0", "NVIDIA H100", "9.0")
    with pytest.raises(StgcnError, match=r"compute capability 8.7 \(Orin\), this GPU is NVIDIA H100 \(9.0\)"):
        check_sidecar(engine, sidecar, "10.3.0", "NVIDIA H100", "9.0")
    check_sidecar(engine, sidecar, "10.3.0", "Orin", "8.7")


def test_loading_an_engine_without_a_gpu_or_tensorrt(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    (tmp_path / "model.engine.json").write_text(json.dumps({"tensorrt": "tensorrt", "tensorrt_version": "10.3.0"}))
    with pytest.raises(StgcnError) as err:
        load_classifier(engine)
    message = str(err.value)
    assert "TensorRT is not installed" in message or "CUDA GPU" in message or "was built with" in message
    (tmp_path / "model.engine.json").write_text("{broken")
    with pytest.raises(StgcnError, match="sidecar .* is unreadable"):
        load_classifier(engine)


def test_parse_size():
    assert parse_size("1GiB") == 1 << 30 and parse_size("512MiB") == 512 << 20
    assert parse_size("2G") == 2 << 30 and parse_size("4096") == 4096
    with pytest.raises(StgcnError, match="cannot read the size"):
        parse_size("lots")


def test_implicit_int8_where_tensorrt_lacks_it(models, tmp_path, real_windows):
    require_rtx()
    with pytest.raises(StgcnError, match="tensorrt_rtx .* has no implicit INT8 calibrators: use explicit Q/DQ"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine",
                     BuildOptions(precision="int8", int8_mode="implicit", builder="rtx", calibration=real_windows[:4]))
    with pytest.raises(StgcnError, match="implicit INT8 needs calibration windows"):
        build_engine(models[(1, "fp32")], tmp_path / "m.engine",
                     BuildOptions(precision="int8", int8_mode="implicit", builder="rtx"))


def test_info_on_an_engine_without_its_sidecar(tmp_path):
    engine = tmp_path / "other.plan"
    engine.write_bytes(b"\0" * 2_000_000)
    described = dict(describe(engine))
    assert described["kind"] == "TensorRT engine (no sidecar)" and described["size"] == "2.0 MB"
    assert "loads unchecked" in described["note"]
