"""The command line: the happy path end to end, and one clear line for every bad input."""

import importlib.util
import subprocess
import sys

import pytest
import torch
from helpers import cli_runner

from stgcn_rt.cli import cli


def run(*args):
    result = cli_runner().invoke(cli, list(map(str, args)))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code, stderr):
    """Exit != 0, no traceback, and exactly one error line, the last (progress lines may precede it)."""
    assert code != 0
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith(("[", " "))]
    assert errors == [lines[-1]], stderr
    assert lines[-1].startswith("error: ") and "Traceback" not in stderr
    assert not lines[-1].startswith("error: unexpected "), "a failure the code did not foresee"


def test_package_import_and_help_stay_light():
    code = ("import sys, stgcn_rt, stgcn_rt.cli; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'cv2', 'mediapipe', 'tensorrt') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "stgcn_rt.cli", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    for command in ("export", "validate", "info", "init-demo"):
        assert command in helped.stdout


def test_demo_export_info_validate(tmp_path, real_windows):
    import numpy as np

    demo, model, data = tmp_path / "demo.pt", tmp_path / "model.onnx", tmp_path / "real.npy"
    np.save(data, real_windows[:4])
    assert run("init-demo", "-o", demo)[0] == 0
    code, out, err = run("export", demo, "-o", model, "--persons", "5", "--data", data, "--random", "2")
    assert code == 0, err
    assert f"wrote {model}" in out and "[3/3] validating" in err
    assert "PASS random windows: 2 windows" in err and "PASS real windows (real.npy): 4 windows" in err
    code, out, _ = run("info", model)
    assert code == 0
    assert "NO: an untrained model, its labels mean nothing" in out  # the demo's ONNX says so too
    assert "input (1, 3, 150, 33, 5)" in out and "23" not in out.split("FLOPs")[0][-5:]
    assert "FLOPs" in out and "normal,shoplifting" in out
    code, out, _ = run("info", demo)
    flop_counter = importlib.util.find_spec("torch.utils.flop_counter") is not None  # torch >= 2.1
    assert code == 0 and "UNTRAINED" in out and "NO: an untrained model" in out
    assert ("23.08 GFLOP" if flop_counter else "not counted: torch's FLOP counter needs torch 2.1") in out
    code, out, err = run("validate", demo, model, "--random", "2")
    assert code == 0, err
    assert out.startswith("PASS random windows: 2 windows")


def test_validate_fails_on_another_checkpoint(tmp_path, reference_checkpoint):
    demo, model = tmp_path / "demo.pt", tmp_path / "model.onnx"
    run("init-demo", "-o", demo)
    assert run("export", demo, "-o", model, "--no-validate")[0] == 0
    code, out, err = run("validate", reference_checkpoint(), model, "--random", "2")
    assert "FAIL random windows" in out
    assert "exported from another checkpoint" in err
    assert code != 0


@pytest.fixture
def bad_inputs(tmp_path, reference_checkpoint):
    import numpy as np

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    good = reference_checkpoint("good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    state = torch.load(good, weights_only=True)
    state["origin_stream.head.weight"] = torch.zeros(1)
    unknown = tmp_path / "unknown_keys.pt"
    torch.save(state, unknown)
    out = tmp_path / "out.onnx"
    empty_onnx = tmp_path / "notes.onnx"  # protobuf decodes this text as an empty ModelProto
    empty_onnx.write_text("x\n")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.zeros((2, 3, 150, 33, 1), np.float32))
    return {
        "missing file": ["export", tmp_path / "missing.pt", "-o", out],
        "not a checkpoint": ["export", text, "-o", out],
        "truncated": ["export", truncated, "-o", out],
        "wrong joint count": ["export", good, "-o", out, "--layout", "coco17"],
        "unknown keys": ["export", unknown, "-o", out],
        "persons 0": ["export", good, "-o", out, "--persons", "0"],
        "output dir missing": ["export", good, "-o", tmp_path / "nowhere" / "m.onnx"],
        "unknown layout": ["export", good, "-o", out, "--layout", "kinect"],
        "bad classes": ["export", good, "-o", out, "--classes", "onlyone"],
        "info on garbage": ["info", text],
        "info on a graph-less onnx": ["info", empty_onnx],
        "quantize a graph-less onnx": ["quantize", empty_onnx, "-o", out, "--calib", calib],
        "triton repository from a graph-less onnx": ["export-triton", empty_onnx, "-o", tmp_path / "repo"],
        "bench an onnx": ["bench", "--model", empty_onnx],
        "unwritable output": ["export", good, "-o", "/proc/stgcn-rt-test.onnx"],
        "fast on the cpu": ["run", "--source", tmp_path / "missing.mp4", "--model", good, "--fast",
                            "--events", tmp_path / "e.jsonl"],
        "export an onnx": ["export", empty_onnx, "-o", out],
        "export without a suffix": ["export", good, "-o", tmp_path / "model"],
        "engine without its suffix": ["build", empty_onnx, "-o", tmp_path / "model.trt"],
        "validate's arguments swapped": ["validate", empty_onnx, good],
    }


@pytest.mark.parametrize("case", ["missing file", "not a checkpoint", "truncated", "wrong joint count",
                                  "unknown keys", "persons 0", "output dir missing", "unknown layout",
                                  "bad classes", "info on garbage", "info on a graph-less onnx",
                                  "quantize a graph-less onnx", "triton repository from a graph-less onnx",
                                  "bench an onnx", "unwritable output", "fast on the cpu", "export an onnx",
                                  "validate's arguments swapped", "export without a suffix",
                                  "engine without its suffix"])
def test_bad_input_is_one_line_and_leaves_no_output(bad_inputs, tmp_path, case):
    code, out, err = run(*bad_inputs[case])
    assert_one_line_error(code, err)
    if case in ("persons 0", "bad classes"):  # rejected by argument parsing
        assert code == 2 and "error: Invalid value" in err
    if case == "bad classes":  # named by its option, as the number lists are
        assert "Invalid value for '--classes': give at least two comma-separated class names" in err
    if case == "export an onnx":
        assert "notes.onnx is an ONNX model, not a PyTorch checkpoint" in err
    if case == "export without a suffix":
        assert err.strip() == f"error: output {tmp_path / 'model'} should end in .onnx: stgcn-rt picks a model's " \
                              "backend by its suffix"
        assert not (tmp_path / "model").exists()
    if case == "engine without its suffix":
        assert "model.trt should end in .engine or .plan" in err
    if case == "validate's arguments swapped":
        assert "good.pt is a checkpoint: validate takes the CHECKPOINT first" in err
    assert not (tmp_path / "out.onnx").exists()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("args, message", [
    (["frob"], "No such command 'frob'. (stgcn-rt --help explains every option)"),
    (["export"], "Missing argument 'CHECKPOINT'. (stgcn-rt export --help explains every option)"),
    (["bench", "--batch", "8,0"], "Invalid value for '--batch': give positive whole numbers, e.g. 1,8,32 "
                                  "(stgcn-rt bench --help"),
    (["bench", "--cameras", "4,x"], "Invalid value for '--cameras': '4,x' is not a comma-separated list"),
    (["export-triton", "m.onnx", "-o", "repo", "--preferred-batch", "0"], "Invalid value for '--preferred-batch'"),
    (["serve", "m.onnx", "--http-port", "99999"], "Invalid value for '--http-port'"),
])
def test_argument_mistakes_are_one_line_naming_the_help(args, message):
    code, out, err = run(*args)
    assert code == 2 and out == "" and err.startswith("error: " + message) and len(err.splitlines()) == 1, err


def test_bench_reads_lists_of_numbers(monkeypatch):
    import stgcn_rt.bench.run as bench_run
    from stgcn_rt.errors import StgcnError

    seen = []

    def record(config, progress=None):
        seen.append(config)
        raise StgcnError("recorded")

    monkeypatch.setattr(bench_run, "run_bench", record)
    code, _, err = run("bench", "--batch", "1, 8", "--cameras", "none", "--clients", "2")
    assert err.strip().endswith("error: recorded")
    assert (seen[0].batches, seen[0].cameras, seen[0].clients) == ([1, 8], [], [2])
    assert seen[0].command == "stgcn-rt bench --batch '1, 8' --cameras none --clients 2"  # the report's, as given


@pytest.mark.parametrize("missing", ["cv2", "mediapipe"])
@pytest.mark.parametrize("command", ["demo", "run"])
def test_pipeline_commands_without_the_pipeline_extra_fail_before_any_work(monkeypatch, tmp_path, reference_checkpoint,
                                                                          missing, command):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else find_spec(name, *a))
    if command == "demo":
        args = ["demo", "--out", tmp_path / "demo"]
    else:
        args = ["run", "--source", tmp_path / "clip.mp4", "--model", reference_checkpoint(),
                "--events", tmp_path / "events.jsonl"]
    code, _, err = run(*args)
    assert_one_line_error(code, err)
    assert f"'{missing}', which is not installed: pip install 'stgcn-rt[pipeline]'" in err
    assert err.count("\n") == 1  # no step began: the error is the only line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"] * (command == "run")


def test_debug_shows_the_traceback(tmp_path):
    result = cli_runner().invoke(cli, ["--debug", "info", str(tmp_path / "missing.pt")])
    assert result.exit_code != 0 and result.exception is not None


def test_a_closed_stdout_is_no_error(tmp_path):
    """stgcn-rt check | head -1: the reader went away, which is not the command's failure."""
    proc = subprocess.Popen([sys.executable, "-m", "stgcn_rt.cli", "check"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and stderr == b""


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stgcn_rt.cli", "info", str(tmp_path / "x.pt")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'x.pt'} not found"


@pytest.mark.parametrize(("args", "mode"), [([], None), (["--fast"], "kernels"), (["--fast", "compile"], "compile"),
                                            (["--fast", "kernels"], "kernels"),
                                            (["--fast", "kernels-fp8"], "kernels-fp8")])
def test_fast_takes_an_optional_mode(monkeypatch, tmp_path, args, mode):
    """--fast alone picks the GPU kernels (the fastest measured); --fast compile the compiled rewrite."""
    import stgcn_rt.cli as cli_module

    seen = {}
    monkeypatch.setattr(cli_module, "run_pipeline", lambda config, model, device, fast: seen.update(fast=fast))
    code, _, err = run("run", *args, "--source", tmp_path / "clip.mp4", "--model", tmp_path / "m.pt")
    assert code == 0, err
    assert seen == {"fast": mode}


@pytest.mark.parametrize(("args", "graphs"), [([], None), (["--pose-graphs"], True), (["--no-pose-graphs"], False)])
def test_pose_graphs_reach_the_pipeline_unless_left_to_the_default(monkeypatch, tmp_path, args, graphs):
    import stgcn_rt.cli as cli_module

    seen = {}
    monkeypatch.setattr(cli_module, "run_pipeline", lambda config, model, device, fast: seen.update(
        graphs=config.pose_graphs))
    code, _, err = run("run", *args, "--source", tmp_path / "clip.mp4", "--model", tmp_path / "m.pt")
    assert code == 0, err
    assert seen == {"graphs": graphs}


def test_fast_modes_select_the_measured_configurations():
    from stgcn_rt.runtime.classifier import fast_torch_options

    assert fast_torch_options("m.pt", "cuda", "kernels") == {"precision": "fp16", "kernels": True,
                                                             "cuda_graphs": True}
    assert fast_torch_options("m.pt", "cuda:1")["kernels"] is True
    assert fast_torch_options("m.pt", "cuda", "compile")["compile"] is True
    assert fast_torch_options("m.pt", "cuda", "kernels-fp8") == {"precision": "fp16", "kernels": True,
                                                                 "cuda_graphs": True, "fp8_temporal": True}
    result = cli_runner().invoke(cli, ["run", "--source", "x.mp4", "--model", "m.pt", "--fast", "turbo"])
    assert result.exit_code == 2 and "Invalid value for '--fast'" in result.stderr
