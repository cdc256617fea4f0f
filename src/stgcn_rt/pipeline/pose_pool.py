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
import threading
import time
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from stgcn_rt.errors import one_line
from stgcn_rt.pipeline.detect import Box, covered, iou
from stgcn_rt.window import CHANNELS, JOINTS

CROP_MARGIN = 0.15
OVERLAP = 0.3  # a detection overlapping the main person this much is that person
COVERED = 0.8  # so is one around this much of the main person (a detector's box is looser than a pose's)


def persons_found(keypoints: np.ndarray) -> np.ndarray:
    """The slots holding someone in person slots (..., M, 33, 3): one count per pose."""
    return keypoints.any(axis=(-2, -1)).sum(axis=-1)


@dataclass
class PoseResult:
    keypoints: np.ndarray  # (M, 33, 3) in [0, 1]; all-zero rows for empty slots
    milliseconds: float
    error: str | None = None
    boxes: dict[int, Box] = field(default_factory=dict)
    #: frames posed together with this one, itself included: BlazePose's step (every camera's frame
    #: of it), 1 in MediaPipe's workers
    batch: int = 1
    #: the slots holding someone; counted from the keypoints where not given (a BlazePose step counts
    #: all of its frames' at once, MediaPipe's workers in their own processes: the pipeline's loop
    #: counts none, 3 us a frame)
    found: int = -1

    def __post_init__(self) -> None:
        if self.found < 0:
            self.found = int(persons_found(self.keypoints))


class PendingPose(Protocol):
    """A frame's pose to come: a :class:`concurrent.futures.Future` or a :class:`PoseFuture`."""

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> PoseResult: ...

    def add_done_callback(self, fn: Callable[[Any], object]) -> None: ...


#: guards every PoseFuture's settling and callbacks (each holds it for a few attribute writes)
_SETTLING = threading.Lock()


class PoseFuture:
    """A frame's pose to come, for a stage that answers many frames at once: the part of
    :class:`concurrent.futures.Future` the pipeline uses (done, result, callbacks, cancel), with
    callbacks run once each, by the thread that settles it (or the one adding it, if settled). A
    Future builds a condition and locks for every frame: made, given a callback, settled and read,
    it took 4.5 us on a 2-core Xeon, this 1.6 (docs/performance.md); here an event is made only for
    a wait on a pose not yet come."""

    __slots__ = ("_done", "_result", "_error", "_callbacks", "_waiter")

    def __init__(self) -> None:
        self._done = False
        self._result: PoseResult | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[PoseFuture], object]] = []
        self._waiter: threading.Event | None = None

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return isinstance(self._error, CancelledError)

    def result(self, timeout: float | None = None) -> PoseResult:
        """The pose, waiting at most ``timeout`` seconds (None: until it comes); raises the stage's
        error, CancelledError if dropped, TimeoutError if it does not come in time."""
        if not self._done:
            with _SETTLING:
                if not self._done and self._waiter is None:
                    self._waiter = threading.Event()
            if self._waiter is not None and not self._waiter.wait(timeout):
                raise FutureTimeoutError("the pose did not come in time")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set whenever there is no error

    def add_done_callback(self, fn: Callable[[PoseFuture], object]) -> None:
        with _SETTLING:
            if not self._done:
                self._callbacks.append(fn)
                return
        fn(self)

    def set_result(self, result: PoseResult) -> None:
        self._result = result
        self._settle()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._settle()

    def cancel(self) -> bool:
        """Drop a pose not yet come (its result raises CancelledError); False if it had come."""
        if self._done:
            return False
        self.set_exception(CancelledError())
        return True

    def _settle(self) -> None:
        with _SETTLING:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
            waiter = self._waiter
        if waiter is not None:
            waiter.set()
        for callback in callbacks:
            callback(self)


class PoseStage(Protocol):
    """What the pipeline poses its frames with: each camera's frames in the order submitted."""

    def submit(self, camera: str, image: np.ndarray) -> PendingPose:
        """A future PoseResult of ``camera``'s next frame."""

    def flush(self) -> None:
        """Send what was submitted since the last flush, where a stage sends frames together."""

    def close(self) -> None:
        """Drop the frames not yet posed; finish those under way."""


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


def _estimate(camera: str, image: np.ndarray, persons: int, detector: str) -> PoseResult:
    start = time.perf_counter()
    try:
        if camera not in _CAMERAS:
            _CAMERAS[camera] = CameraPose(persons, detector)
        keypoints, boxes = _CAMERAS[camera](image)
    except Exception as exc:  # reported by the pipeline, once per camera
        return PoseResult(np.zeros((persons, JOINTS, CHANNELS), np.float32),
                          (time.perf_counter() - start) * 1000, one_line(exc))
    return PoseResult(keypoints, (time.perf_counter() - start) * 1000, boxes=boxes)


def _quiet_worker() -> None:
    """MediaPipe's C++ logging writes to the process's stderr; failures reach the pipeline as
    PoseResult.error instead, so the workers' stderr is silenced (unless STGCN_RT_DEBUG is set)."""
    from stgcn_rt.quiet import native_logs_shown, native_stderr_to_devnull

    if not native_logs_shown():
        native_stderr_to_devnull()


class PosePool:
    """``workers`` single-process executors; the k-th camera seen always uses executor k % workers."""

    def __init__(self, workers: int | None = None, persons: int = 1, detector: str = "hog") -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.persons = persons
        self.detector = detector
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self._executors = [ProcessPoolExecutor(1, mp_context=context, initializer=_quiet_worker)
                           for _ in range(self.workers)]
        self._slots: dict[str, int] = {}
        self._pending: set[Future] = set()  # to cancel on close (shutdown's cancel_futures needs Python 3.9)

    def submit(self, camera: str, image: np.ndarray) -> Future:
        slot = self._slots.setdefault(camera, len(self._slots) % self.workers)
        future = self._executors[slot].submit(_estimate, camera, image, self.persons, self.detector)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    def flush(self) -> None:
        """Nothing to send: each frame goes to its worker as it is submitted."""

    def close(self) -> None:
        """Drop the frames no worker has started, then wait for the running ones."""
        for future in list(self._pending):
            future.cancel()
        for executor in self._executors:
            executor.shutdown(wait=True)

    def __enter__(self) -> PosePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
