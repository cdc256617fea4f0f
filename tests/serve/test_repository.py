"""export-triton: Triton's standard model repository from a checkpoint, ONNX model or engine."""

import json
import re

import pytest
from helpers import cli_runner

from stgcn_rt.cli import cli
from stgcn_rt.errors import StgcnError
from stgcn_rt.serve.repository import TritonOptions, export_triton


def parse_pbtxt(text):
    """The fields the tests check, read with regular expressions (Triton's own parser, when
    tritonclient is installed, is used by the test below)."""
    return {
        "name": re.search(r'^name: "(.+)"', text, re.M).group(1),
        "platform": re.search(r'^platform: "(.+)"', text, re.M).group(1),
        "max_batch_size": int(re.search(r"^max_batch_size: (\d+)", text, re.M).group(1)),
        "dims": [[int(d) for d in m.split(",")] for m in re.findall(r"dims: \[ ([\d, ]+) \]", text)],
        "preferred": re.search(r"preferred_batch_size: \[ ([\d, ]+) \]", text).group(1),
        "count": int(re.search(r"count: (\d+)", text).group(1)),
        "kind": re.search(r"kind: (\w+)", text).group(1),
    }


def test_repository_from_a_dynamic_batch_onnx(demo_models, tmp_path):
    _, onnx_path = demo_models
    target = export_triton(onnx_path, tmp_path / "repo", TritonOptions(max_batch=16, instances=3,
                                                                       preferred_batch=[4, 8, 32]))
    assert target == tmp_path / "repo" / "stgcn"
    assert sorted(p.name for p in target.iterdir()) == ["1", "config.pbtxt", "labels.txt"]
    assert (target / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    assert (target / "labels.txt").read_text() == "normal\nshoplifting\n"
    config = parse_pbtxt((target / "config.pbtxt").read_text())
    assert config == {"name": "stgcn", "platform": "onnxruntime_onnx", "max_batch_size": 16,
                      "dims": [[3, 150, 33, 1], [2]], "preferred": "4, 8", "count": 3, "kind": "KIND_GPU"}


def test_tritons_own_parser_accepts_the_config(demo_models, tmp_path):
    """Parsed by Triton's ModelConfig protobuf (tritonclient). tritonclient needs protobuf >= 5, which
    mediapipe 0.10.21 cannot share, so scripts/test.sh keeps it in its own venv and names its python
    in STGCN_RT_SERVE_PYTHON."""
    import os
    import subprocess
    import sys

    python = os.environ.get("STGCN_RT_SERVE_PYTHON")
    if not python:
        try:  # importable only where protobuf >= 6 is installed
            import tritonclient.grpc.model_config_pb2  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"Triton's config parser is not importable here ({exc}); scripts/test.sh provides it")
        python = sys.executable
    _, onnx_path = demo_models
    target = export_triton(onnx_path, tmp_path / "repo", TritonOptions())
    code = ("import sys; from google.protobuf import text_format; "
            "from tritonclient.grpc import model_config_pb2 as mc; "
            "c = text_format.Parse(open(sys.argv[1]).read(), mc.ModelConfig()); "
            "print(c.name, c.platform, c.max_batch_size, list(c.input[0].dims), "
            "c.parameters['stgcn_rt.classes'].string_value, c.parameters['stgcn_rt.untrained'].string_value)")
    out = subprocess.run([python, "-c", code, str(target / "config.pbtxt")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["stgcn", "onnxruntime_onnx", "64", "[3,", "150,", "33,", "1]", "normal,shoplifting",
                                  "true"]  # the demo model is untrained, which clients read


def test_repository_from_a_checkpoint_and_from_an_engine(demo_models, tmp_path):
    ckpt, _ = demo_models
    options = TritonOptions(name="multi", persons=5, kind="KIND_CPU", random_count=2)
    target = export_triton(ckpt, tmp_path / "repo", options, report=lambda text: None)
    config = parse_pbtxt((target / "config.pbtxt").read_text())
    assert config["dims"][0] == [3, 150, 33, 5] and config["kind"] == "KIND_CPU"
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine bytes")
    (tmp_path / "m.engine.json").write_text(json.dumps({
        "inputs": [{"name": "input", "shape": [-1, 3, 150, 33, 1]}], "outputs": [{"name": "output"}],
        "classes": ["normal", "shoplifting"]}))
    target = export_triton(engine, tmp_path / "repo", TritonOptions(name="trt"))
    assert (target / "1" / "model.plan").read_bytes() == b"engine bytes"
    assert parse_pbtxt((target / "config.pbtxt").read_text())["platform"] == "tensorrt_plan"


def test_refusals(tmp_path, demo_models):
    import onnx

    ckpt, onnx_path = demo_models
    static = tmp_path / "static.onnx"
    model = onnx.load(str(onnx_path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(static))
    with pytest.raises(StgcnError, match="re-export with stgcn-rt export --dynamic-batch"):
        export_triton(static, tmp_path / "repo", TritonOptions())
    (tmp_path / "e.engine").write_bytes(b"x")
    with pytest.raises(StgcnError, match="no e.engine.json sidecar"):
        export_triton(tmp_path / "e.engine", tmp_path / "repo", TritonOptions())
    with pytest.raises(StgcnError, match="not found"):
        export_triton(tmp_path / "none.onnx", tmp_path / "repo", TritonOptions())
    assert not (tmp_path / "repo" / "stgcn").exists()


def test_cli_prints_the_server_commands(demo_models, tmp_path):
    _, onnx_path = demo_models
    result = cli_runner().invoke(cli, ["export-triton", str(onnx_path), "-o", str(tmp_path / "repo"),
                                      "--preferred-batch", "8,16"])
    assert result.exit_code == 0, result.stderr
    assert f"tritonserver --model-repository={(tmp_path / 'repo').resolve()}" in result.stdout
    assert "-p 127.0.0.1:8001:8001" in result.stdout  # published on localhost only
