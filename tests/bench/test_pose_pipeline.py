"""The bench's pose and whole-pipeline sections with tiny settings on the CPU (shapes and counts,
never timings)."""

import json

import jsonschema
import pytest
from helpers import cli_runner

from stgcn_rt.bench.pipeline import expected_windows
from stgcn_rt.bench.report import SCHEMA, markdown
from stgcn_rt.bench.run import BenchConfig, run_bench
from stgcn_rt.cli import cli

pytest.importorskip("tflite")
pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def report():
    config = BenchConfig(backends=[], cameras=[], seconds=0.2, pose_batches=[1, 2], pipeline_cameras=[1],
                         pipeline_poses=["blazepose"], pipeline_p99_ms=60_000)
    return run_bench(config)


def test_pose_rows_time_both_networks_and_the_whole_graph(report):
    jsonschema.validate(json.loads(json.dumps(report)), SCHEMA)
    assert report["latency"] == [] and report["cameras"] == []  # --backends none --cameras none
    blazepose = {(r["stage"], r["batch"]) for r in report["pose"] if r["backend"] == "blazepose"}
    assert blazepose == {(stage, batch) for stage in ("landmark network", "detector network", "whole graph, tracking")
                         for batch in (1, 2)}
    assert all(r["per_s"] > 0 and r["precision"] == "fp32" and not r["cuda_graphs"] for r in report["pose"])
    mediapipe = [r for r in report["pose"] if r["backend"].startswith("mediapipe")]
    assert len(mediapipe) == 1 or any(s.startswith("mediapipe") for s in report["skipped"])


def test_pose_rows_with_cuda_graphs_get_a_table_row_of_their_own(report):
    """On a GPU each network and the whole graph are timed eagerly, through CUDA graphs, and through
    graphs of compiled stages: the table keeps the three apart (here copies of one row stand in for
    the GPU's runs). The CPU's rows say they ran uncompiled."""
    row = next(r for r in report["pose"] if r["stage"] == "landmark network" and r["batch"] == 1)
    assert row["compiled"] is False
    graphed = {**report, "pose": [row, {**row, "cuda_graphs": True, "per_s": 2 * row["per_s"]},
                                  {**row, "cuda_graphs": True, "compiled": True, "per_s": 3 * row["per_s"]}],
               "pipeline": []}
    lines = [line for line in markdown(graphed, "pose").splitlines() if line.startswith("| blazepose")]
    assert [line.split(" | ")[2] for line in lines] == ["fp32", "fp32, CUDA graphs", "fp32, CUDA graphs, compiled"]


def test_the_pipeline_section_runs_every_window_of_a_paced_camera(report):
    (row,) = report["pipeline"]
    assert (row["pose"], row["pose_precision"], row["cameras"], row["pose_compiled"]) == ("blazepose", "fp32", 1, False)
    assert row["windows"] == row["expected_windows"] == expected_windows(300, 5) == 31
    assert row["frames_dropped"] == 0 and row["errors"] == 0 and row["persons_found"] > 0.9
    assert 0 < row["p50_ms"] <= row["p99_ms"] < 60_000 and row["ok"]
    assert 0 < row["classify_p99_ms"] <= row["p99_ms"] and row["pose_ms"] > 0  # parts of it
    assert row["pose_batch"] == 1.0  # one camera: a frame a step
    assert 0 < row["pose_ready_s"] <= row["start_s"] < row["wall_s"]  # the classifier's warm-up, then pose's
    assert 0 < row["to_pose_p50_ms"] <= row["p50_ms"] and row["to_pose_p50_ms"] <= row["to_pose_p99_ms"]
    # on the CPU BlazePose runs in the pipeline's process, which counts it; one decoding process
    assert row["cores"]["decoding"] > 0 and row["cores"]["pipeline"] > 0.1 and row["cores"]["pose"] == 0
    assert row["cores"]["host"] >= row["cores"]["decoding"]
    text = markdown(report, "pipeline")
    assert "## Pose" in text and "## Whole pipeline" in text and "Capacity: blazepose fp32 1 camera " in text
    pipeline = text.split("## Whole pipeline")[1]
    cells = {line.split(" | ")[10] for line in pipeline.splitlines() if line.startswith("| blazepose")}
    assert cells == {" / ".join(f"{row['cores'][part]:.1f}" for part in ("decoding", "pose", "pipeline", "host"))}
    assert "| pose ms | frames a pose step |" in text
    starts = {line.split(" | ")[13] for line in pipeline.splitlines() if line.startswith("| blazepose")}
    assert starts == {f"{row['start_s']:.0f} / {row['pose_ready_s']:.0f}"}
    assert "Batch-1 latency" not in text and "baseline" not in text


def test_expected_windows_start_with_the_first_full_window():
    assert (expected_windows(300, 5), expected_windows(300, 25), expected_windows(149, 1)) == (31, 7, 0)


def test_an_unknown_pipeline_pose_is_one_line():
    result = cli_runner().invoke(cli, ["bench", "--backends", "none", "--pipeline-cameras", "1",
                                      "--pipeline-pose", "openpose"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --pipeline-pose: unknown pose backend openpose: choose from "
                                     "blazepose, mediapipe")


def test_blazepose_runs_once_per_number_of_lanes_eagerly_and_through_graphs(monkeypatch, tmp_path):
    """--pipeline-lanes 1,2 on a GPU: blazepose's rows for each, eagerly and through CUDA graphs (a
    variant stops at its first failure), mediapipe's once; the tables name the lanes where there were
    several, and the graphs."""
    from stgcn_rt.bench import pipeline

    calls = []

    def fake_run(model, device, pose, cameras, stride, persons, clip, frames, work, fast, lanes, graphs):
        calls.append((pose, lanes, graphs, cameras))
        return {"pose": pose, "pose_precision": "fp16" if pose == "blazepose" else None,
                "pose_lanes": min(lanes, cameras) if pose == "blazepose" else None,
                "pose_graphs": graphs if pose == "blazepose" else None, "classifier": "PyTorch",
                "cameras": cameras, "windows": 31 * cameras, "expected_windows": 31 * cameras, "p50_ms": 20.0,
                "p99_ms": 300.0 if cameras > 4 else 40.0, "to_pose_p50_ms": 10.0, "to_pose_p99_ms": 12.0,
                "classify_p99_ms": 5.0, "pose_ms": 8.0, "frames_dropped": 0,
                "persons_found": 1.0, "errors": 0}

    monkeypatch.setattr(pipeline, "_run", fake_run)
    monkeypatch.setattr(pipeline, "camera_clip", lambda work: (work / "camera.mp4", 300))
    rows, skipped = pipeline.pipeline_rows(tmp_path / "m.pt", "cuda", ["blazepose", "mediapipe"], [4, 8, 16], 5, 1,
                                           tmp_path, lambda text: None, lanes=[1, 2])
    assert calls == [("blazepose", lanes, graphs, cameras) for lanes in (1, 2) for graphs in (False, True)
                     for cameras in (4, 8)] + [("mediapipe", 1, False, 4), ("mediapipe", 1, False, 8)]
    assert not skipped
    from stgcn_rt.bench.report import _pipeline_section

    text = "\n".join(_pipeline_section({"config": {"persons": 1, "stride": 5, "pipeline_p99_ms": 250.0,
                                                   "pipeline_cameras": [4, 8, 16]}, "pipeline": rows}))
    assert "| blazepose fp16, 2 lanes | PyTorch | 4 |" in text and "| blazepose fp16 | PyTorch | 8 |" in text
    assert "| blazepose fp16, 2 lanes, CUDA graphs | PyTorch | 8 |" in text
    assert ("Capacity: blazepose fp16 4 cameras, blazepose fp16, CUDA graphs 4 cameras, blazepose fp16, 2 lanes "
            "4 cameras, blazepose fp16, 2 lanes, CUDA graphs 4 cameras, mediapipe 4 cameras") in text
