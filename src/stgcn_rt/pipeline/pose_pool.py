"""Pose in worker processes: MediaPipe is the CPU bottleneck, so it runs on every core.

Each camera is pinned to one worker, so its frames reach that worker in order: MediaPipe's landmark
tracking and the multi-person slot tracker keep their state per camera inside the worker.
Single person (M=1): MediaPipe on the whole frame follows the main person. Multi person: the same
main person, plus the detector's other people, each posed on its crop and mapped back to
full-frame coordinates; :class:`SlotTracker` keeps everyone in a stable slot.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from stgcn_rt.errors import one_line
from stgcn_rt.pipeline.detect import Box, covered, iou
from stgcn_rt.pipeline.posed import Answer, PosedStep
from stgcn_rt.window import CHANNELS, JOINTS

CROP_MARGIN = 0.15
OVERLAP = 0.3  # a detection overlapping the main person this much is that person
COVERED = 0.8  # so is one around this much of the main person (a detector's box is looser than a pose's)


def box_of(keypoints: np.ndarray, width: int, height: int) -> Box:
    visible = keypoints[keypoints[:, 2] > 0.3] if (keypoints[:, 2] > 0.3).any() else keypoints
    x, y = visible[:, 0] * width, visible[:, 1] * height
    return Box(float(x.min()), float(y.min()), float(x.max()), float(y.max()))


class CameraPose:
    """The per-camera pose state that lives in a worker."""

    def __init__(self, persons: int, detector: str) -> None:
        from stgcn_rt.pipeline.pose import PoseEstimator

        self.persons = persons
        self.whole_frame = PoseEstimator()
        self.crops: dict[int, PoseEstimator] = {}
        if persons > 1:
            from stgcn_rt.pipeline.detect import make_detector
            from stgcn_rt.pipeline.tracking import SlotTracker

            self.detector = make_detector(detector)
            self.tracker = SlotTracker(persons)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, dict[int, Box]]:
        out = np.zeros((self.persons, JOINTS, CHANNELS), np.float32)
        height, width = image.shape[:2]
        if self.persons == 1:
            points = self.whole_frame(image)
            if points is not None:
                out[0] = points
                return out, {0: box_of(points, width, height)}
            return out, {}
        # The main person comes from whole-frame MediaPipe, which tracks one person well; the
        # detector adds the people who neither overlap it nor hold it. A crop whose pose is one already
        # kept is that person again (two boxes around one person): its slot is freed.
        from stgcn_rt.pipeline.tracking import same_person

        whole = self.whole_frame(image)
        main = box_of(whole, width, height) if whole is not None else None
        others = [b for b in self.detector(image)
                  if main is None or (iou(b, main) < OVERLAP and covered(main, b) < COVERED)]
        boxes = ([main] if main is not None else []) + others
        slots = self.tracker.update(boxes)
        kept: dict[int, Box] = {}
        for slot, box in sorted(slots.items(), key=lambda item: (item[1] is not main, item[0])):
            points = whole if box is main else self._crop_pose(slot, image, box)
            if points is None:
                continue
            if any(same_person(points, out[other], width, height) for other in kept):
                self.tracker.forget(slot)
                continue
            out[slot] = points
            kept[slot] = box
        return out, kept

    def _crop_pose(self, slot: int, image: np.ndarray, box: Box) -> np.ndarray | None:
        from stgcn_rt.pipeline.pose import PoseEstimator

        height, width = image.shape[:2]
        mx, my = (box.x2 - box.x1) * CROP_MARGIN, (box.y2 - box.y1) * CROP_MARGIN
        x0, y0 = int(max(0, box.x1 - mx)), int(max(0, box.y1 - my))
        x1, y1 = int(min(width, box.x2 + mx)), int(min(height, box.y2 + my))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        if slot not in self.crops:
            self.crops[slot] = PoseEstimator()
        points = self.crops[slot](np.ascontiguousarray(image[y0:y1, x0:x1]))
        if points is None:
            return None
        points[:, 0] = (x0 + points[:, 0] * (x1 - x0)) / width
        points[:, 1] = (y0 + points[:, 1] * (y1 - y0)) / height
        return np.clip(points, 0.0, 1.0)


_CAMERAS: dict[str, CameraPose] = {}


def _estimate(camera: str, image: np.ndarray, persons: int, detector: str) -> PosedStep:
    """``camera``'s next frame posed in this worker, as a step of one frame."""
    start = time.perf_counter()
    try:
        if camera not in _CAMERAS:
            _CAMERAS[camera] = CameraPose(persons, detector)
        keypoints, _ = _CAMERAS[camera](image)
    except Exception as exc:  # reported by the pipeline, once per camera
        return PosedStep.failed(1, persons, one_line(exc), (time.perf_counter() - start) * 1000)
    return PosedStep(keypoints[None], (time.perf_counter() - start) * 1000)


def _quiet_worker() -> None:
    """MediaPipe's C++ logging writes to the process's stderr; failures reach the pipeline as
    their steps' errors instead, so the workers' stderr is silenced (unless STGCN_RT_DEBUG is set)."""
    from stgcn_rt.quiet import native_logs_shown, native_stderr_to_devnull

    if not native_logs_shown():
        native_stderr_to_devnull()


class PosePool:
    """``workers`` single-process executors; the k-th camera seen always uses executor k % workers.
    Each frame is a step of its own, answered (``answer``) on the thread that settles its future."""

    def __init__(self, answer: Answer, workers: int | None = None, persons: int = 1, detector: str = "hog") -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.persons = persons
        self.detector = detector
        self._answer = answer
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self._executors = [ProcessPoolExecutor(1, mp_context=context, initializer=_quiet_worker)
                           for _ in range(self.workers)]
        self._slots: dict[str, int] = {}
        self._pending: dict[Future, Any] = {}  # to cancel on close (shutdown's cancel_futures needs Python 3.9)

    def submit(self, camera: str, image: np.ndarray, job: Any) -> None:
        slot = self._slots.setdefault(camera, len(self._slots) % self.workers)
        future = self._executors[slot].submit(_estimate, camera, image, self.persons, self.detector)
        self._pending[future] = job
        future.add_done_callback(self._settled)

    def _settled(self, future: Future) -> None:
        job = self._pending.pop(future)
        if future.cancelled():  # dropped by close
            return
        try:
            step = future.result()
        except Exception as exc:  # a crashed worker: this frame counts as without a person
            step = PosedStep.failed(1, self.persons, f"pose worker failed: {one_line(exc)}")
        self._answer([job], step)

    def flush(self) -> None:
        """Nothing to send: each frame goes to its worker as it is submitted."""

    def close(self) -> list[Any]:
        """Drop the frames no worker has started (their jobs returned), then wait for the running ones."""
        dropped = [job for future, job in list(self._pending.items()) if future.cancel()]
        for executor in self._executors:
            executor.shutdown(wait=True)
        return dropped

    def __enter__(self) -> PosePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
