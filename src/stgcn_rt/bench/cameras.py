"""N simulated cameras at 25 fps, a window every ``stride`` frames: the roadmap's thread-per-camera
design (batch 1 per camera, its own CUDA stream) against the batching scheduler.

A camera's window is due every stride/fps seconds (phases spread evenly). Latency runs from the due
time to the probabilities. The thread design drops a window when the camera's previous one is still
running at the next due time; the scheduler drops under back-pressure. Capacity = the most cameras
with p99 latency under 100 ms and no dropped window.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from stgcn_rt.bench.measure import percentiles_ms
from stgcn_rt.errors import one_line
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.runtime.scheduler import BatchScheduler

FPS = 25.0
P99_LIMIT_MS = 100.0


def _result(latencies: list[float], expected: int, dropped: int, seconds: float,
            p99_limit_ms: float = P99_LIMIT_MS) -> dict[str, Any]:
    p50, p99 = percentiles_ms(latencies)
    return {"expected": expected, "completed": len(latencies), "dropped": dropped,
            "p50_ms": p50, "p99_ms": p99, "windows_per_s": len(latencies) / seconds,
            "ok": dropped == 0 and len(latencies) == expected and p99 < p99_limit_ms}


def _schedule(cameras: int, stride: int, seconds: float) -> list[tuple[float, int]]:
    period = stride / FPS
    events = []
    for camera in range(cameras):
        due = camera / cameras * period
        while due < seconds:
            events.append((due, camera))
            due += period
    heapq.heapify(events)
    return [heapq.heappop(events) for _ in range(len(events))]


def scheduler_design(classifier: Classifier, cameras: int, stride: int, seconds: float, windows: np.ndarray,
                     max_batch: int = 256, max_wait_ms: float = 10.0, p99_limit_ms: float = P99_LIMIT_MS,
                     overlap: bool = True) -> dict[str, Any]:
    events = _schedule(cameras, stride, seconds)
    latencies: list[float] = []
    dropped = 0
    lock = threading.Lock()
    scheduler = BatchScheduler(classifier, max_batch=max_batch, max_wait_ms=max_wait_ms,
                               queue_size=max(64, 4 * cameras), overlap=overlap)
    start = time.perf_counter()

    def done(future: Any, due: float) -> None:
        nonlocal dropped
        finished = time.perf_counter() - start
        with lock:
            if future.exception() is None:
                latencies.append(finished - due)
            else:
                dropped += 1

    for due, camera in events:
        delay = start + due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        future = scheduler.submit(camera, windows[camera % len(windows)])
        future.add_done_callback(functools.partial(done, due=due))
    scheduler.close()
    return _result(latencies, len(events), dropped, seconds, p99_limit_ms)


def thread_design(run_one: Callable[[np.ndarray, Any], Any], make_stream: Callable[[], Any], cameras: int,
                  stride: int, seconds: float, windows: np.ndarray, p99_limit_ms: float = P99_LIMIT_MS
                  ) -> dict[str, Any]:
    """A window that raises (a thread per camera runs out of GPU memory long before 1,000 cameras)
    is counted as dropped, and the first error is kept for the report; the camera goes on."""
    period = stride / FPS
    latencies: list[float] = []
    dropped = 0
    expected = 0
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.05 * min(cameras, 100) / 100 + 0.05

    def camera(index: int) -> None:
        nonlocal dropped, expected
        window = windows[index % len(windows)][None]
        due = index / cameras * period
        mine, lost, count, failures = [], 0, 0, []
        try:
            stream, started = make_stream(), True
        except Exception as exc:  # every window of this camera is lost
            stream, started = None, False
            failures.append(one_line(exc))
        while due < seconds:
            count += 1
            now = time.perf_counter() - start
            if not started or now > due + period:  # no stream, or still busy with an older window
                lost += 1
            else:
                if now < due:
                    time.sleep(due - now)
                try:
                    run_one(window, stream)
                    mine.append(time.perf_counter() - start - due)
                except Exception as exc:
                    lost += 1
                    failures.append(one_line(exc))
            due += period
        with lock:
            latencies.extend(mine)
            dropped += lost
            expected += count
            errors.extend(failures)

    threads = [threading.Thread(target=camera, args=(i,), daemon=True) for i in range(cameras)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = _result(latencies, expected, dropped, seconds, p99_limit_ms)
    if errors:
        result.update(errors=len(errors), first_error=errors[0][:200])
    return result
