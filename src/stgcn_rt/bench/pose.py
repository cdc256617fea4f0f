"""The pose section of a benchmark run: BlazePose's two networks (crops a second per batch size and
precision) and its whole graph across cameras (frames a second, tracking on), beside MediaPipe's own
solution in one process on the CPU, measured in the same run on the shipped clip."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from stgcn_rt.errors import StgcnError, first_line, one_line, require

CLIP_FRAMES = 60  # frames of the shipped clip the whole-graph rows cycle through


def clip_frames() -> np.ndarray:
    """The shipped clip's first frames at 640x480 (BGR), in shared memory as the pipeline decodes them."""
    from stgcn_rt.data import demo_video
    from stgcn_rt.pipeline.decoders import FRAME_SHAPE, shared_frames
    from stgcn_rt.pipeline.sources import FRAME_SIZE, video_frames

    cv2 = require("cv2", "pipeline", "Reading the shipped clip")
    images = [cv2.resize(image, FRAME_SIZE) for image in itertools.islice(video_frames(demo_video()), CLIP_FRAMES)]
    _, block = shared_frames((CLIP_FRAMES, *FRAME_SHAPE))
    block[:] = np.stack(images)
    return block


def _rate(step: Callable[[int], Any], sync: Callable[[], None], count: int, seconds: float) -> float:
    """``count`` items a call: items a second over at least ``seconds`` (and three calls), after two."""
    for i in range(2):
        step(i)
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        step(calls)
        calls += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 3:
            return calls * count / elapsed


def pose_rows(device: str, batches: list[int], seconds: float, tick: Callable[[str], None]
              ) -> tuple[list[dict[str, Any]], list[str]]:
    """The section's rows and what could not be measured here (and why)."""
    from stgcn_rt.pipeline.pose_stage import PRECISIONS, blazepose
    from stgcn_rt.pose.graphs import can_compile

    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    frames = clip_frames()
    gpu = device.startswith("cuda")
    # on a GPU: eagerly, through CUDA graphs, and through graphs of compiled stages where Triton is installed
    ways = ([(False, False), (True, False)] + [(True, True)] * can_compile()) if gpu else [(False, False)]
    for precision, (graphs, compiled) in itertools.product(PRECISIONS if gpu else ("fp32",), ways):
        try:
            pose = blazepose(device, precision, graphs=graphs, compiled=compiled)
        except StgcnError as exc:
            skipped.append(f"blazepose: {first_line(exc)}")
            break
        pose.warm_up()
        pose.networks.pin(frames)
        try:
            rows += _blazepose_rows(pose, precision, frames, batches, seconds, tick)
        finally:
            pose.networks.unpin()
    rows += _mediapipe_rows(frames, seconds, tick, skipped)
    return rows, skipped


def _blazepose_rows(pose: Any, precision: str, frames: np.ndarray, batches: list[int], seconds: float,
                    tick: Callable[[str], None]) -> list[dict[str, Any]]:
    import torch

    from stgcn_rt.pose.blazepose import Tracks

    networks = pose.networks
    sync: Callable[[], None] = torch.cuda.synchronize if networks.device.type == "cuda" else (lambda: None)
    graphs, compiled = networks.graphs, networks.compiled  # False on the CPU, where everything runs eagerly
    label = f"{precision}{', CUDA graphs' if graphs else ''}{', compiled' if compiled else ''}"
    way = {"cuda_graphs": graphs, "compiled": compiled}
    rows = []

    def network_call(network: Any, crops: torch.Tensor) -> Callable[[int], Any]:
        timed = networks.staged(network)  # the network alone, as the stages run it
        return lambda i: networks._run(timed, (), crops)

    def graph_call(names: list[str]) -> Callable[[int], Any]:  # each camera at its own frame of the clip
        return lambda i: pose.process({name: frames[(i + c) % CLIP_FRAMES] for c, name in enumerate(names)})

    for stage, network, size in (("landmark network", networks.landmarker, 256),
                                 ("detector network", networks.detector, 224)):
        for batch in batches:
            tick(f"pose: blazepose {stage} {label} batch {batch}")
            crops = torch.rand(batch, size, size, 3, device=networks.device).to(networks.dtype)
            per_s = _rate(network_call(network, crops), sync, batch, seconds)
            rows.append({"backend": "blazepose", "stage": stage, "precision": precision, **way,
                         "batch": batch, "unit": "crops", "per_s": per_s})
    for cameras in batches:
        tick(f"pose: blazepose whole graph {label}, {cameras} cameras")
        pose.tracks = Tracks()
        per_s = _rate(graph_call([f"camera{c}" for c in range(cameras)]), sync, cameras, seconds)
        rows.append({"backend": "blazepose", "stage": "whole graph, tracking", "precision": precision,
                     **way, "batch": cameras, "unit": "frames", "per_s": per_s})
    return rows


def _mediapipe_rows(frames: np.ndarray, seconds: float, tick: Callable[[str], None],
                    skipped: list[str]) -> list[dict[str, Any]]:
    """MediaPipe's Python solution (model_complexity 1, video mode) on one CPU core's process."""
    from stgcn_rt.pipeline.pose import PoseEstimator
    from stgcn_rt.quiet import native_stderr_hidden

    tick("pose: mediapipe whole graph")
    try:
        with native_stderr_hidden(), PoseEstimator() as estimator:
            per_s = _rate(lambda i: estimator(frames[i % CLIP_FRAMES]), lambda: None, 1, seconds)
    except Exception as exc:  # not installed, or a wheel that cannot run here
        skipped.append(f"mediapipe: {one_line(exc)}")
        return []
    return [{"backend": "mediapipe (CPU, one process)", "stage": "whole graph, tracking", "precision": "fp32",
             "cuda_graphs": False, "batch": 1, "unit": "frames", "per_s": per_s}]
