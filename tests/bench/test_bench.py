"""The benchmark harness end to end with tiny settings (timings are not asserted, only their shape)."""

import copy
import json
import tempfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from helpers import cli_runner

from stgcn_rt.bench import run as bench_run
from stgcn_rt.bench.candidates import Candidate, makers
from stgcn_rt.bench.report import SCHEMA, markdown
from stgcn_rt.bench.run import BenchConfig, capacity, run_bench
from stgcn_rt.cli import cli
from stgcn_rt.export import onnx_export
from stgcn_rt.export.onnx_export import export_onnx as real_export_onnx
from stgcn_rt.runtime.configurations import NAMES


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small run, with the temporary folder it ran in and the exports it made."""
    temp, exports = tmp_path_factory.mktemp("temp"), []
    config = BenchConfig(backends=["eager", "onnxruntime"], batches=[1, 2], cameras=[1, 2], iterations=5,
                         warmup=1, seconds=0.3, p99_limit_ms=60_000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        patch.setattr(onnx_export, "export_onnx", lambda *args, **kwargs: exports.append(args[1]) or
                      real_export_onnx(*args, **kwargs))
        report = run_bench(config)
    return report, temp, exports


@pytest.fixture(scope="module")
def report(small_run):
    return small_run[0]


def test_one_export_serves_the_candidate_and_the_scheduler_and_nothing_is_left_behind(small_run):
    _, temp, exports = small_run
    assert [Path(path).name for path in exports] == ["fp32.onnx"]
    assert [path.name for path in temp.iterdir() if path.name.startswith("stgcn-rt")] == []  # torch keeps caches


def test_report_validates_against_its_schema(report):
    jsonschema.validate(json.loads(json.dumps(report)), SCHEMA)
    assert [r["backend"] for r in report["latency"]] == ["pytorch eager (roadmap)", "onnxruntime cpu"]
    assert [r["baseline"] for r in report["latency"]] == [True, False]
    assert {(r["backend"], r["batch"]) for r in report["throughput"]} == {
        (b, n) for b in ("pytorch eager (roadmap)", "onnxruntime cpu") for n in (1, 2)}
    for row in report["latency"]:
        stats = row["with_copies"]
        assert stats["samples"] == 5 and 0 < stats["p50_ms"] <= stats["p99_ms"]


def test_both_camera_designs_are_measured(report):
    designs = {(r["design"], r["cameras"]) for r in report["cameras"]}
    assert designs == {("thread", 1), ("scheduler", 1), ("thread", 2), ("scheduler", 2)}
    for row in report["cameras"]:
        assert row["completed"] + row["dropped"] == row["expected"] > 0
    assert capacity(report["cameras"], "scheduler") in (0, 1, 2)


def test_markdown_has_ratios_against_the_baseline(report):
    text = markdown(report, "stem")
    assert "| pytorch eager (roadmap) | fp32 |" in text and "1.00x |" in text
    assert "## Throughput" in text and "## Cameras at 25 fps" in text
    thread, scheduler = (capacity(report["cameras"], design) for design in ("thread", "scheduler"))
    assert (f"Capacity: thread per camera {thread} camera{'' if thread == 1 else 's'}, "
            f"batching scheduler {scheduler} camera{'' if scheduler == 1 else 's'} (of those tried: [1, 2]") in text
    assert "fp16, graphs, compile, optimized and GPU-kernel variants: no CUDA GPU" in text


def test_the_input_on_device_column_only_where_a_gpu_backend_measured_it(report):
    """A CPU run has no window on a device: no such column or sentence; a row that measured one gets it,
    and every latency row keeps one cell per column."""
    def latency_table(text):
        table = text.split("## Batch-1 latency (ms)")[1].split("## Throughput")[0]
        return [line for line in table.splitlines() if line.startswith("|")]

    cpu = markdown(report, "stem")
    assert "input on device" not in cpu.lower()
    rows = latency_table(cpu)
    assert {line.count("|") for line in rows} == {7}
    gpu = copy.deepcopy(report)
    gpu["latency"][1]["device_only"] = {**gpu["latency"][1]["with_copies"], "p50_ms": 0.123}
    text = markdown(gpu, "stem")
    assert "\"Input on device\": the window already on the GPU" in text
    rows = latency_table(text)
    assert {line.count("|") for line in rows} == {8}
    assert rows[2].split("|")[6].strip() == "-" and rows[3].split("|")[6].strip() == "0.123"


def test_a_precision_with_spaces_keeps_its_own_column(report):
    renamed = copy.deepcopy(report)
    for row in renamed["latency"] + renamed["throughput"]:
        if row["backend"] == "onnxruntime cpu":
            row["precision"] = "int8, BatchNorm kept"
    throughput = markdown(renamed, "stem").split("## Throughput")[1]
    assert "| onnxruntime cpu | int8, BatchNorm kept | " in throughput


def test_cli_writes_json_markdown_and_plots(tmp_path):
    result = cli_runner().invoke(cli, ["bench", "--backends", "onnxruntime", "--batch", "1", "--cameras", "1",
                                      "--iterations", "5", "--seconds", "0.2", "--out", str(tmp_path),
                                      "--name", "t"])
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["t-cameras.png", "t-latency.png", "t-throughput.png", "t.json", "t.md"]
    assert (tmp_path / "t-latency.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "t.json").read_text())["config"]["batches"] == [1]


@pytest.mark.parametrize("args, message", [
    (["--backends", "warp"], "unknown backend warp"),
    (["--batch", "0,2"], "positive whole numbers"),
    (["--model", "missing.pt"], "checkpoint missing.pt not found"),
])
def test_bad_arguments(args, message):
    result = cli_runner().invoke(cli, ["bench", *args])
    assert result.exit_code != 0 and message in result.stderr


def test_cameras_none_skips_the_camera_test(tmp_path):
    result = cli_runner().invoke(cli, ["bench", "--backends", "onnxruntime", "--batch", "1", "--cameras", "none",
                                      "--iterations", "5", "--seconds", "0.2", "--out", str(tmp_path),
                                      "--name", "t"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t-latency.png", "t-throughput.png", "t.json", "t.md"]
    assert json.loads((tmp_path / "t.json").read_text())["cameras"] == []
    text = (tmp_path / "t.md").read_text()
    assert "## Cameras" not in text and "t-cameras.png" not in text and "t-latency.png" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_backends_that_cannot_run_here_are_one_clear_error(tmp_path):
    result = cli_runner().invoke(cli, ["bench", "--backends", "kernels-graphs", "--batch", "1", "--cameras",
                                      "none", "--iterations", "5", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "none of the backends asked for can run here (fp16, graphs" in result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_markdown_names_the_first_error_of_a_design(report):
    failing = copy.deepcopy(report)
    failing["cameras"][0].update(errors=3, first_error="RuntimeError: CUDA error: out of memory")
    jsonschema.validate(json.loads(json.dumps(failing)), SCHEMA)
    row = failing["cameras"][0]
    assert (f"{row['label']} at {row['cameras']} cameras: 3 windows failed with an error (counted as dropped), "
            "the first: RuntimeError: CUDA error: out of memory") in markdown(failing, "stem")


def test_a_backend_that_fails_is_reported_and_the_run_goes_on(monkeypatch):
    """A backend failing at one batch size (out of memory, say) or at every size costs its rows, not the run."""

    def small_only(batch):
        if len(batch) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 9.00 GiB\n(details)")
        return np.full((len(batch), 2), 0.5, np.float32)

    def broken(batch):
        raise KeyError("C_OUT")

    def fine(batch):
        return np.full((len(batch), 2), 0.5, np.float32)

    candidates = [Candidate("small-only", "fp16", "cpu", small_only), Candidate("broken", "fp16", "cpu", broken),
                  Candidate("fine", "fp32", "cpu", fine, baseline=True)]
    monkeypatch.setattr(bench_run, "available", lambda *args: (candidates, []))
    report = run_bench(BenchConfig(batches=[1, 2], cameras=[], iterations=5, warmup=1, seconds=0.2))
    assert [r["backend"] for r in report["latency"]] == ["small-only", "fine"]
    assert {(r["backend"], r["batch"]) for r in report["throughput"]} == {("small-only", 1), ("fine", 1), ("fine", 2)}
    assert report["skipped"] == [
        "small-only fp16 batch 2: failed: RuntimeError: CUDA out of memory. Tried to allocate 9.00 GiB",
        "broken fp16: failed while timing batch 1: KeyError: 'C_OUT'",
    ]
    jsonschema.validate(json.loads(json.dumps(report)), SCHEMA)


def test_a_scheduler_that_cannot_start_keeps_the_rows_measured(monkeypatch):
    """The camera test's scheduler failing to start (the GPU kernels without a new enough triton,
    say) is one line under "skipped" after the latency and throughput rows, not a lost run; with
    nothing measured before it, the run fails in one line, its candidates closed first."""
    from stgcn_rt.errors import StgcnError

    def cannot_start(config, loaded, work):
        raise StgcnError("the GPU kernels need triton >= 3.2 and this environment has 2.0.0\n(details)")

    monkeypatch.setattr(bench_run, "in_process_backend", cannot_start)
    fine = Candidate("fine", "fp32", "cpu", lambda batch: np.full((len(batch), 2), 0.5, np.float32), baseline=True)
    monkeypatch.setattr(bench_run, "available", lambda *args: ([fine], []))
    report = run_bench(BenchConfig(batches=[1], cameras=[1, 2], iterations=5, warmup=1, seconds=0.2))
    assert [r["backend"] for r in report["latency"]] == ["fine"] and report["cameras"] == []
    assert report["skipped"] == ["camera test: the batching scheduler cannot start here: the GPU kernels need "
                                 "triton >= 3.2 and this environment has 2.0.0 (see stgcn-rt check)"]
    jsonschema.validate(json.loads(json.dumps(report)), SCHEMA)

    def fails(batch):
        raise RuntimeError("CUDA error: out of memory")

    closed = []
    failing = Candidate("failing", "fp32", "cpu", fails, closers=[lambda: closed.append("failing")])
    monkeypatch.setattr(bench_run, "available", lambda *args: ([failing], []))
    with pytest.raises(StgcnError, match="^the batching scheduler cannot start here: the GPU kernels need"):
        run_bench(BenchConfig(batches=[1], cameras=[1], iterations=5, warmup=1, seconds=0.2))
    assert closed == ["failing"]  # a candidate that measured nothing is closed before the error


def test_the_camera_test_runs_what_fast_runs_by_default():
    from stgcn_rt.runtime.configurations import (
        DEFAULT_FAST_MODE,
        DEFAULT_SCHEDULER_BACKEND,
        SCHEDULER_BACKENDS,
        configuration,
        fast_options,
    )

    assert DEFAULT_SCHEDULER_BACKEND in SCHEDULER_BACKENDS
    assert configuration(DEFAULT_SCHEDULER_BACKEND).options == fast_options(DEFAULT_FAST_MODE)
    assert BenchConfig().scheduler_backend == DEFAULT_SCHEDULER_BACKEND
    assert configuration("triton-kernels-fp8-graphs").name == "kernels-fp8-graphs"  # the old name still works


def test_every_backend_name_has_a_maker(tmp_path):
    """The CLI's --backends choices (torch-free names) and the makers agree, on a machine with everything."""
    found = makers(None, 1, np.zeros((1, 3, 150, 33, 1), np.float32), tmp_path, cuda=True,
                   engine=tmp_path / "m.engine", server="grpc://localhost:8001/stgcn")
    assert list(found) == list(NAMES)


def test_host_calls_are_timed_without_a_device_synchronisation():
    """A call that hands back host probabilities has finished: only the resident-input calls, which
    return device results, are followed by the candidate's synchronisation (once per sample, and
    once after their warm-up)."""
    from stgcn_rt.bench.measure import latency

    syncs = []
    candidate = Candidate("gpu-like", "fp16", "cuda", call=lambda b: np.zeros((len(b), 2)),
                          device_call=lambda x: x, to_device=lambda b: b, sync=lambda: syncs.append(1))
    stats = latency(candidate, np.zeros((3, 3, 4, 5, 1), np.float32), iterations=7, warmup=2)
    assert stats["with_copies"]["samples"] == stats["device_only"]["samples"] == 7
    assert len(syncs) == 7 + 1
