"""The cores a pipeline run keeps busy, by part, while its cameras run: the decoding processes,
pose where it has processes of its own (BlazePose's process, MediaPipe's workers), the pipeline's
own process (the loop, routing, classification; pose too where it runs there) and the whole host.

So that a report says by itself which part a camera count runs out of: a part near a whole core
per process (the pipeline's process, BlazePose's) or the host near all of its cores. Read with
psutil, sampled on a thread: the processes come and go inside the run.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

#: how often the processes' CPU times are read
INTERVAL_S = 0.5
PARTS = ("decoding", "pose", "pipeline", "host")


def _part(name: str) -> str:
    """The part a child process of the pipeline belongs to, by its multiprocessing name."""
    return "decoding" if name.startswith("decoder-") else "pose"


class CoreSampler:
    """A context manager sampling, every ``interval`` seconds, the CPU seconds each part has used.
    :meth:`cores` then gives each part's cores busy over the span when every decoding process was
    running, i.e. while the cameras ran; None without psutil or before such a span."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        #: (time, decoding processes alive, CPU seconds by part, the host's idle seconds)
        self.samples: list[tuple[float, int, dict[str, float], float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="cores", daemon=True)
        try:
            import psutil
        except ImportError:
            self._psutil: Any = None
        else:
            self._psutil = psutil
            self._me = psutil.Process(os.getpid())
            self._children: dict[int, Any] = {}  # the children's psutil handles, kept between samples

    def __enter__(self) -> CoreSampler:
        if self._psutil is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self.interval)

    def _sample(self) -> tuple[float, int, dict[str, float], float]:
        psutil = self._psutil
        used = {part: 0.0 for part in PARTS if part != "host"}
        decoders = 0
        for child in multiprocessing.active_children():
            pid = child.pid
            if pid is None:  # not started
                continue
            try:
                if pid not in self._children:
                    self._children[pid] = psutil.Process(pid)
                times = self._children[pid].cpu_times()
            except (psutil.Error, ValueError):  # gone between the listing and the reading
                continue
            part = _part(child.name)
            decoders += part == "decoding"
            used[part] += times.user + times.system
        own = self._me.cpu_times()
        used["pipeline"] = own.user + own.system
        host = psutil.cpu_times()
        return time.perf_counter(), decoders, used, host.idle + getattr(host, "iowait", 0.0)

    def cores(self) -> dict[str, float] | None:
        """Each part's cores busy while every decoding process ran (its CPU seconds over the span's)."""
        most = max((decoders for _, decoders, _, _ in self.samples), default=0)
        running = [(t, used, idle) for t, decoders, used, idle in self.samples if decoders == most and most]
        if len(running) < 2 or running[-1][0] <= running[0][0]:
            return None
        (start, first, idle_first), (end, last, idle_last) = running[0], running[-1]
        span = end - start
        cores = {part: max(0.0, (last[part] - first[part]) / span) for part in first}
        # the host's busy cores are its cores less its idle ones: its busy ticks undercount short bursts
        # (a process waking for a frame between two ticks: 0.40 against the parts' 0.55 here at 16
        # cameras), which the processes' own times, kept by the scheduler, do not
        cores["host"] = max(0.0, (self._psutil.cpu_count() or 1) - (idle_last - idle_first) / span)
        return cores
