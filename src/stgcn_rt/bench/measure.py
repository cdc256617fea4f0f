"""Timing: batch-1 latency, throughput per batch size. Warm-up first, synchronised timers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from stgcn_rt.bench.candidates import Candidate


def percentiles_ms(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds; infinite when nothing completed."""
    if len(seconds) == 0:
        return math.inf, math.inf
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def summarise(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    p50, p99 = percentiles_ms(seconds)
    return {"mean_ms": float(ms.mean()), "std_ms": float(ms.std()), "p50_ms": p50, "p99_ms": p99,
            "samples": len(ms)}


def _timed(step: Callable[[int], Any], sync: Callable[[], None], iterations: int, warmup: int) -> list[float]:
    for i in range(warmup):
        step(i)
    sync()
    times = []
    for i in range(iterations):
        start = time.perf_counter()
        step(i)
        sync()
        times.append(time.perf_counter() - start)
    return times


def latency(candidate: Candidate, windows: np.ndarray, iterations: int, warmup: int) -> dict[str, Any]:
    """Batch 1, host array in and probabilities out; and, on GPUs, with the input already resident.

    A call that returns host probabilities has finished its device work, so it is timed alone: a
    device synchronisation after it would add the cost of the synchronisation call (10-20 µs on an
    H100 host) to every sample. The resident-input calls return device tensors and are timed with it."""
    singles = [windows[i % len(windows)][None] for i in range(len(windows))]
    result: dict[str, Any] = {"with_copies": summarise(_timed(lambda i: candidate.call(singles[i % len(singles)]),
                                                              lambda: None, iterations, warmup))}
    device_call, to_device = candidate.device_call, candidate.to_device
    if device_call is not None and to_device is not None and candidate.device != "cpu":
        resident = [to_device(s) for s in singles]
        result["device_only"] = summarise(_timed(lambda i: device_call(resident[i % len(resident)]),
                                                 candidate.sync, iterations, warmup))
    return result


def throughput(candidate: Candidate, windows: np.ndarray, batch: int, min_seconds: float, warmup: int = 2
               ) -> dict[str, float]:
    """Windows per second at ``batch`` (host in, probabilities out), over at least ``min_seconds``."""
    rng = np.random.default_rng(batch)
    batches = [windows[rng.integers(0, len(windows), batch)] for _ in range(3)]
    for i in range(warmup):
        candidate.call(batches[i % 3])
    candidate.sync()
    count, start = 0, time.perf_counter()
    while True:
        candidate.call(batches[count % 3])
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and count >= 3:
            break
    return {"windows_per_s": count * batch / elapsed, "batch_ms": elapsed / count * 1000, "batches": count}
