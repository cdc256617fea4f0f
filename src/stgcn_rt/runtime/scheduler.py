"""Batching scheduler: windows from many cameras, one bounded queue, one model, batched runs.

Cameras call ``submit`` from any thread and get a ``Future``. One worker gathers queued windows
into a batch (up to ``max_batch``, waiting at most ``max_wait_ms`` after the first; no more than
the classifier runs without padding), runs the classifier once, and resolves each future with that
window's probabilities and latency. While a batch runs, the worker launches the next one if it is
already due (:meth:`Classifier.launch`), so with an asynchronous backend the host's work for one
batch (stacking, copying in, resolving futures) overlaps the device's work on the other
(``overlap=False``, or a backend that finishes inside ``launch``: one batch at a time, so a batch's
results never wait for the next batch's run).

When the queue is full the oldest queued window of the submitting camera is dropped (or, if it
has none queued, the oldest of the camera holding most of the queue): the dropped future fails
with :class:`WindowDropped` and the drop is counted, never silent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime.classifier import Classifier


class WindowDropped(StgcnError):
    """The window was dropped under back-pressure before it was classified."""


@dataclass
class WindowResult:
    camera: Hashable
    probabilities: np.ndarray
    latency_s: float  # from submit to result: queue_s, then the batch's run
    batch_size: int
    meta: Any = None
    queue_s: float = 0.0  # waiting in the queue until its batch was launched

    @property
    def run_s(self) -> float:
        """The batch's run: launch to result (the model, and with overlap the batch before it)."""
        return self.latency_s - self.queue_s


@dataclass
class _Item:
    camera: Hashable
    window: np.ndarray
    meta: Any
    future: Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class SchedulerStats:
    submitted: Counter = field(default_factory=Counter)
    completed: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    batches: int = 0
    batch_sizes: Counter = field(default_factory=Counter)

    def totals(self) -> dict[str, int]:
        totals = {name: sum(getattr(self, name).values()) for name in ("submitted", "completed", "dropped", "failed")}
        totals["batches"] = self.batches
        return totals


class BatchScheduler:
    def __init__(self, classifier: Classifier, max_batch: int = 64, max_wait_ms: float = 5.0,
                 queue_size: int = 1024, on_result: Callable[[WindowResult], None] | None = None,
                 overlap: bool = True) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise StgcnError("max_batch and queue_size must be positive and max_wait_ms not negative")
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.on_result = on_result
        self.overlap = overlap and classifier.launches_asynchronously
        self.stats = SchedulerStats()
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="stgcn-rt-batcher", daemon=True)
        self._worker.start()

    def __enter__(self) -> BatchScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, camera: Hashable, window: np.ndarray, meta: Any = None) -> Future:
        """Queue one (C, T, V, M) window of ``camera``; the future resolves to a WindowResult."""
        window = np.asarray(window)
        self.classifier.check_windows(window[None])
        item = _Item(camera, window, meta, Future())
        dropped = None
        with self._cond:
            if self._closing:
                raise StgcnError("the scheduler is closed")
            if len(self._queue) >= self.queue_size:
                dropped = self._evict_for(camera)
            self._queue.append(item)
            self.stats.submitted[camera] += 1
            if len(self._queue) == 1 or len(self._queue) >= self.max_batch:
                # the worker waits for a first window, then for a full batch or its deadline: waking
                # it on every window would cost a thread switch per window
                self._cond.notify()
        if dropped is not None:
            dropped.future.set_exception(WindowDropped(
                f"window of camera {dropped.camera} dropped: the classification queue was full"))
        return item.future

    def _evict_for(self, camera: Hashable) -> _Item:
        victim = next((it for it in self._queue if it.camera == camera), None)
        if victim is None:
            busiest = Counter(it.camera for it in self._queue).most_common(1)[0][0]
            victim = next(it for it in self._queue if it.camera == busiest)
        self._queue.remove(victim)
        self.stats.dropped[victim.camera] += 1
        return victim

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting windows, classify everything still queued, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout)

    def _next_batch(self, wait: bool = True) -> list[_Item] | None:
        """The next batch; None once closed and drained, or without ``wait`` when none is due yet
        (a full batch, or the oldest window past its deadline)."""
        with self._cond:
            while wait and not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            deadline = self._queue[0].enqueued + self.max_wait
            while len(self._queue) < self.max_batch and not self._closing:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                if not wait:
                    return None
                self._cond.wait(remaining)
            # the rest of the queue, already past its deadline, is the next batch
            count = max(1, self.classifier.unpadded_batch(min(self.max_batch, len(self._queue))))
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        running: tuple[list[_Item], Callable[[], np.ndarray], float] | None = None
        while True:
            # with a batch running, take the next only if it is due now; else finish the running one
            batch = self._next_batch(wait=running is None)
            if batch is None:
                if running is None:
                    return
                self._finish(*running)
                running = None
                continue
            started = time.perf_counter()
            launched = self._launch(batch)
            if running is not None:
                self._finish(*running)
            running = (batch, launched, started) if launched is not None else None
            if running is not None and not self.overlap:
                self._finish(*running)
                running = None

    def _launch(self, batch: list[_Item]) -> Callable[[], np.ndarray] | None:
        try:
            return self.classifier.launch(np.stack([item.window for item in batch]))
        except Exception as exc:  # one failed batch must not stop the worker
            self._fail(batch, exc)
            return None

    def _fail(self, batch: list[_Item], exc: Exception) -> None:
        for item in batch:
            self.stats.failed[item.camera] += 1
            item.future.set_exception(exc)

    def _finish(self, batch: list[_Item], launched: Callable[[], np.ndarray], started: float) -> None:
        try:
            probabilities = launched()
        except Exception as exc:
            self._fail(batch, exc)
            return
        done = time.perf_counter()
        self.stats.batches += 1
        self.stats.batch_sizes[len(batch)] += 1
        for item, probs in zip(batch, probabilities):
            result = WindowResult(item.camera, probs, done - item.enqueued, len(batch), item.meta,
                                  started - item.enqueued)
            self.stats.completed[item.camera] += 1
            item.future.set_result(result)
            if self.on_result is not None:
                try:
                    self.on_result(result)
                except Exception:  # a faulty consumer must not stop classification
                    logging.getLogger(__name__).exception("result callback failed for camera %s", item.camera)
