"""Pose in worker processes: MediaPipe is the CPU bottleneck, so it runs on every core.

Each camera is pinned to one worker (its frames reach MediaPipe in order, so landmark tracking
and smoothing keep working); a worker serves several cameras, one estimator each.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

_ESTIMATORS: dict = {}


@dataclass
class PoseResult:
    keypoints: np.ndarray | None  # (33, 3) in [0, 1], or None when nobody was found
    milliseconds: float
    error: str | None = None


def _estimate(camera: str, image: np.ndarray) -> PoseResult:
    from stgcn_rt.pipeline.pose import PoseEstimator

    start = time.perf_counter()
    try:
        if camera not in _ESTIMATORS:
            _ESTIMATORS[camera] = PoseEstimator()
        keypoints = _ESTIMATORS[camera](image)
    except Exception as exc:  # reported by the pipeline, once per camera
        return PoseResult(None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}")
    return PoseResult(keypoints, (time.perf_counter() - start) * 1000)


def _quiet_worker() -> None:
    """MediaPipe's C++ logging writes to the process's stderr; failures reach the pipeline as
    PoseResult.error instead, so the workers' stderr is silenced (unless STGCN_RT_DEBUG is set)."""
    if not os.environ.get("STGCN_RT_DEBUG"):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


class PosePool:
    """``workers`` single-process executors; camera ``k`` always uses executor ``k % workers``."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self._executors = [ProcessPoolExecutor(1, mp_context=context, initializer=_quiet_worker)
                           for _ in range(self.workers)]
        self._slots: dict[str, int] = {}

    def submit(self, camera: str, image: np.ndarray) -> Future:
        slot = self._slots.setdefault(camera, len(self._slots) % self.workers)
        return self._executors[slot].submit(_estimate, camera, image)

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PosePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
