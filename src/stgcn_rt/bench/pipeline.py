"""The end-to-end camera section of a benchmark run: N cameras through the whole pipeline (decode,
pose, windows, ST-GCN, events) as ``stgcn-rt run --realtime`` runs them, per pose backend.

Each camera is a copy of the shipped clip written at 640x480 and 25 fps (the contract's cameras)
and paced to its frame rate, so that it arrives as a live camera's frames do. A camera count is
kept up with when every window of every camera is classified and the p99 of the frame-to-event
latency (from a window's last frame leaving its camera to its prediction line) stays under the
limit; a pose backend is not tried at larger counts after its first failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.bench.cores import CoreSampler
from stgcn_rt.errors import one_line, require

FPS = 25.0
P99_LIMIT_MS = 250.0


def camera_clip(work: Path) -> tuple[Path, int]:
    """The shipped clip as a 640x480, 25 fps file in ``work``, and its frame count."""
    from stgcn_rt.data import demo_video
    from stgcn_rt.pipeline.sources import FRAME_SIZE, video_frames

    cv2 = require("cv2", "pipeline", "Writing the cameras' clip")
    path = work / "camera.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, FRAME_SIZE)
    frames = 0
    for image in video_frames(demo_video()):
        writer.write(cv2.resize(image, FRAME_SIZE))
        frames += 1
    writer.release()
    return path, frames


def camera_folder(clip: Path, cameras: int, work: Path) -> Path:
    """A folder of ``cameras`` names for ``clip`` (links where the file system has them)."""
    folder = work / f"cameras-{cameras}"
    if not folder.exists():
        folder.mkdir()
        for camera in range(cameras):
            target = folder / f"camera{camera:04d}.mp4"
            try:
                os.symlink(clip, target)
            except OSError:
                shutil.copyfile(clip, target)
    return folder


def expected_windows(frames: int, stride: int, window: int = 150) -> int:
    """Windows a camera of ``frames`` frames gives: one every ``stride`` frames once the first is full."""
    return sum(1 for count in range(stride, frames + 1, stride) if count >= window)


def pipeline_rows(model: Path, device: str, poses: list[str], counts: list[int], stride: int, persons: int,
                  work: Path, tick: Callable[[str], None], p99_limit_ms: float = P99_LIMIT_MS, fast: str | None = None,
                  lanes: list[int] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per pose backend (blazepose once per number of ``lanes``, and on a GPU eagerly and
    through CUDA graphs) and camera count tried, and the backends that could not run here."""
    clip, frames = camera_clip(work)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    graphs = (False, True) if device.startswith("cuda") else (False,)
    variants = [(pose, count, graphed) for pose in poses
                for count in ((lanes or [1]) if pose == "blazepose" else [1])
                for graphed in (graphs if pose == "blazepose" else (False,))]
    for pose, lane_count, graphed in variants:
        for cameras in counts:
            tick(f"pipeline: {pose}{f' in {lane_count} lanes' if lane_count > 1 else ''}"
                 f"{' through CUDA graphs' if graphed else ''}, {cameras} cameras")
            try:
                row = _run(model, device, pose, cameras, stride, persons, clip, frames, work, fast, lane_count,
                           graphed)
            except Exception as exc:  # a pose backend that cannot run here is reported, not fatal
                skipped.append(f"pipeline with {pose}: {one_line(exc)}")
                break
            row["ok"] = bool(row["windows"] == row["expected_windows"] and row["p99_ms"] < p99_limit_ms
                             and not row["errors"])
            rows.append(row)
            if not row["ok"]:
                break
    return rows, skipped


def _run(model: Path, device: str, pose: str, cameras: int, stride: int, persons: int, clip: Path, frames: int,
         work: Path, fast: str | None, lanes: int, graphs: bool) -> dict[str, Any]:
    from stgcn_rt.pipeline.runner import PipelineConfig, run_with_model

    events = work / f"events-{pose}-{lanes}-{'graphs' if graphs else 'eager'}-{cameras}.jsonl"
    config = PipelineConfig(sources=[str(camera_folder(clip, cameras, work))], events=events, persons=persons,
                            stride=stride, pose=pose, pose_device=device, pose_lanes=lanes, pose_graphs=graphs,
                            pace=True, status_interval=3600.0)
    start, started_at = time.perf_counter(), time.time()
    with contextlib.redirect_stderr(io.StringIO()), CoreSampler() as sampler:  # the pipeline's status lines
        result = run_with_model(config, str(model), device, fast, report=lambda text: None)
    wall = time.perf_counter() - start
    cores = sampler.cores()
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    predictions = [line for line in lines if line["kind"] == "prediction"]

    def column(key: str) -> np.ndarray:  # a field of every prediction (infinite where there is none)
        return np.array([line[key] for line in predictions]) if predictions else np.array([np.inf])

    ages, classified, posed = column("frame_to_event_ms"), column("latency_ms"), column("frame_to_pose_ms")
    run = lines[0]
    return {"pose": pose, "pose_precision": run.get("pose_precision"),
            "pose_lanes": min(lanes, cameras) if pose == "blazepose" else None,
            "pose_graphs": graphs if pose == "blazepose" else None, "pose_process": run.get("pose_process"),
            "pose_compiled": run.get("pose_compiled"),
            # the start the cameras waited for: the classifier's load and warm-up, then pose's (its share)
            "start_s": datetime.fromisoformat(run["time"]).timestamp() - started_at,
            "pose_ready_s": run.get("pose_ready_s"),
            "classifier": run["backend"],
            "persons": persons, "cameras": cameras, "fps": FPS, "stride": stride, "windows": len(predictions),
            "expected_windows": cameras * expected_windows(frames, stride),
            "p50_ms": float(np.percentile(ages, 50)), "p99_ms": float(np.percentile(ages, 99)),
            # where the time goes: until the last frame's pose is back, a window's wait for and run in the
            # classifier, and a pose step (or frame)
            "to_pose_p50_ms": float(np.percentile(posed, 50)), "to_pose_p99_ms": float(np.percentile(posed, 99)),
            "classify_p99_ms": float(np.percentile(classified, 99)),
            "pose_ms": float(np.mean([s.pose_ms for s in result.summaries])),
            # frames a pose step carried: near the cameras where pose is what limits, far under where it waits
            "pose_batch": float(np.mean([s.pose_batch for s in result.summaries])),
            "frames_dropped": sum(s.frames_dropped for s in result.summaries),
            "persons_found": float(np.mean([s.person_rate for s in result.summaries])),
            "errors": sum(len(s.errors) for s in result.summaries), "wall_s": wall,
            # cores busy while the cameras ran, by part (None without psutil): which one a count runs out of
            "cores": cores}
