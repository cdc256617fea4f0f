"""CUDA graphs for the PyTorch runner: one captured graph per batch bucket (the powers of two), windows
in from pinned host memory and results out into it, and a launch that does not wait for the GPU.
The TensorRT runner shares the pinned staging."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def bucket_above(count: int) -> int:
    """The batch bucket that holds ``count`` windows: batch buckets are the powers of two."""
    return 1 << (count - 1).bit_length()


def buckets_up_to(count: int) -> list[int]:
    """The batch buckets no larger than ``count``, smallest first."""
    return [1 << i for i in range(count.bit_length())]


#: the largest batch bucket whose windows a model with ``scores`` (the GPU kernels) reads straight
#: from the pinned host buffer; larger batches come in by one copy. On an H100 the two forms took the
#: same time at 16 and 512 windows, and in place kept the GPU's pass 6-7 µs shorter at one window
IN_PLACE_MAX_BATCH = 16

#: the most persons per window read in place: one window of five persons took 60-85 µs longer in
#: place on an H100, its first kernel reading it over the bus three times, every fifth value per
#: thread (docs/benchmarks/call-phases-in-place-h100-2026-11-27-s20.md)
IN_PLACE_MAX_PERSONS = 1

#: the two rows of a host-I/O graph's output, per window
LOGITS, PROBABILITIES = 0, 1


class LaunchedBatch:
    """A graph replay started by :meth:`CapturedBatch.start_host`: :meth:`rows` waits for the GPU
    and returns each window's output rows; :meth:`collect` keeps them so the graph may run again."""

    def __init__(self, host_out: np.ndarray, count: int, done: torch.cuda.Event) -> None:
        self._host_out, self._count, self._done = host_out, count, done
        self._rows: np.ndarray | None = None

    def collect(self) -> None:
        if self._rows is None:
            self._done.synchronize()
            self._rows = self._host_out[:self._count].copy()

    def rows(self, row: int) -> np.ndarray:
        """``row``: :data:`LOGITS` or :data:`PROBABILITIES` of each window, (count, classes)."""
        self.collect()
        assert self._rows is not None
        return self._rows[:, row]


class CapturedBatch:
    """One CUDA graph for a fixed batch shape.

    Without ``host_io``: a static device input, the model, a static device output (the logits).
    With ``host_io``: windows from a pinned host buffer in, and per window its logits and
    probabilities (N, 2, classes) out into a pinned host buffer, so one call costs one graph launch
    and one synchronisation. A model with a ``scores(x, out)`` method (the GPU kernels) reads and
    writes the pinned buffers itself, with no copy node in the graph (up to :data:`IN_PLACE_MAX_BATCH`
    windows of up to :data:`IN_PLACE_MAX_PERSONS` persons; others are copied in); for any other model the
    graph copies the windows in, and the logits with their softmax out. ``pool`` (a
    ``torch.cuda.graph_pool_handle()``) lets graphs that never run at the same time share their
    intermediate memory.
    """

    def __init__(self, model: Any, shape: tuple[int, ...], device: torch.device, host_io: bool,
                 pool: Any = None) -> None:
        self.static_in = torch.zeros(shape, dtype=torch.float32, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up kernels (and compile) and the allocator outside the graph
                out = model(self.static_in)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        if not host_io:
            self._host_in = self._host_out = None
            with torch.cuda.graph(self.graph, pool=pool):
                self.static_out = model(self.static_in)
            return
        host_in = torch.zeros(shape, dtype=torch.float32).pin_memory()
        host_out = torch.zeros((shape[0], 2, out.shape[-1]), dtype=torch.float32).pin_memory()
        scores = getattr(model, "scores", None)
        in_place = scores is not None and shape[0] <= IN_PLACE_MAX_BATCH and shape[-1] <= IN_PLACE_MAX_PERSONS
        with torch.cuda.graph(self.graph, pool=pool):
            if not in_place:
                self.static_in.copy_(host_in, non_blocking=True)
            if scores is not None:
                scores(host_in if in_place else self.static_in, host_out)
            else:
                logits = model(self.static_in).float()
                host_out.copy_(torch.stack([logits, torch.softmax(logits, dim=1)], dim=1), non_blocking=True)
        # numpy views of the pinned buffers (the tensors stay alive with them): a batch-1 call costs
        # tens of microseconds, so the host side moves windows in and results out without a torch operation
        self._host_in, self._host_out = host_in.numpy(), host_out.numpy()
        self._launched: LaunchedBatch | None = None  # the last start_host, until its rows are kept

    def run_device(self, x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        self.static_in[:count].copy_(x)
        if count < self.static_in.shape[0]:
            self.static_in[count:].zero_()
        self.graph.replay()
        return self.static_out[:count].clone()

    def run_host(self, windows: np.ndarray, row: int) -> np.ndarray:
        """``row``: :data:`LOGITS` or :data:`PROBABILITIES` of each window."""
        assert self._host_out is not None
        self._replay_from_host(windows)
        torch.cuda.current_stream(self.static_in.device).synchronize()
        return self._host_out[:len(windows), row].copy()

    def start_host(self, windows: np.ndarray) -> LaunchedBatch:
        """:meth:`run_host` without waiting for the GPU: the caller prepares its next batch meanwhile."""
        assert self._host_out is not None
        self._replay_from_host(windows)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.static_in.device))
        self._launched = LaunchedBatch(self._host_out, len(windows), done)
        return self._launched

    def _replay_from_host(self, windows: np.ndarray) -> None:
        """Windows into the pinned input (padded with zeros), then the graph, not waited for. A replay
        started before and not yet collected keeps its rows first: its buffers are about to be reused."""
        assert self._host_in is not None
        if self._launched is not None:
            self._launched.collect()
            self._launched = None
        count = len(windows)
        np.copyto(self._host_in[:count], windows, casting="same_kind")
        if count < len(self._host_in):
            self._host_in[count:] = 0
        self.graph.replay()


class PinnedStaging:
    """Page-locked host buffers, one per shape, so numpy windows reach the GPU by async copies."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, ...], torch.Tensor] = {}

    def stage(self, windows: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        key = tuple(host.shape)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(key, dtype=torch.float32).pin_memory()
        return self._buffers[key].copy_(host)

    def clear(self) -> None:
        self._buffers.clear()


