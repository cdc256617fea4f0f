"""BlazePose's stages as CUDA graphs (one captured per input signature and CUDA stream), of the
stages compiled by torch.compile where Triton is installed.

Eager PyTorch makes each operation a call from Python (188 in the landmark network, 162 in the
detector, about 180 more for a step's crops and heatmap refinement), re-taking the interpreter lock
after each; in the pipeline the decoders' router, the main loop and the classifier's thread want
that lock too, so a step's host side may wait on them (docs/performance.md, session 29). A graph
launches a whole stage (crops, network, refinement) in one call. Graphs are kept per stream because
a replay writes its graph's own memory: two lanes (threads on their own streams) replaying one graph
at once would overwrite each other's crops.

Compiled, a stage's element-wise work runs as fused Triton kernels instead of one kernel an
operation: on an H100 the crops of 224 frames took 0.44 ms instead of 5.5 (the same bytes), and the
landmark stage at 256 crops fp16 15.0 ms instead of 21.8 (docs/performance.md, session 33).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
from collections.abc import Callable, Hashable
from typing import Any, Union

import torch

from stgcn_rt.errors import one_line

#: the classifier's thread may use the device while a lane captures: only this thread's calls are
#: checked during a capture (torch 2.1 and newer; older ones check every thread's)
_THREAD_LOCAL: dict[str, Any] = ({"capture_error_mode": "thread_local"}
                                 if "capture_error_mode" in inspect.signature(torch.cuda.graph).parameters else {})

Argument = Union[torch.Tensor, Hashable]  # a tensor, or a constant the graph is captured for


def can_compile() -> bool:
    """Whether torch.compile can make GPU kernels here: PyTorch 2 and Triton (NVIDIA's Jetson wheels
    of PyTorch come without Triton: there the stages run uncompiled, in CUDA graphs all the same)."""
    return hasattr(torch, "compile") and importlib.util.find_spec("triton") is not None


class CompiledCall:
    """``function`` through torch.compile, for any batch size (compiled once, and once more for a
    batch of one, rather than once a batch size). If compiling fails, one warning (however many
    stages fail for the same reason), and ``function`` itself from then on."""

    def __init__(self, function: Callable[..., tuple[torch.Tensor, ...]]) -> None:
        self.function = function
        self._compiled: Callable[..., tuple[torch.Tensor, ...]] | None = torch.compile(function, dynamic=True)

    def __call__(self, *inputs: Argument) -> tuple[torch.Tensor, ...]:
        if self._compiled is not None:
            from torch._dynamo.exc import TorchDynamoException

            try:
                return self._compiled(*inputs)
            except TorchDynamoException as exc:  # tracing or compiling; not a failure while running
                # a compiler's failure comes wrapped, the wrapper's first line naming only the backend
                reason = getattr(exc, "inner_exception", None) or exc
                _warn_uncompiled(one_line(reason))
                self._compiled = None
        return self.function(*inputs)


@functools.lru_cache(maxsize=None)
def _warn_uncompiled(reason: str) -> None:
    logging.getLogger("stgcn_rt").warning("BlazePose runs uncompiled: torch.compile failed (%s)", reason)


class GraphedCall:
    """``function`` of tensors (and hashable constants) returning a tuple of tensors, run on CUDA
    inputs through a graph captured at the first call of each signature (shapes, dtypes, constants)
    on each stream. Warm the signatures up before real work: a capture runs the function twice and
    synchronises the device. Inputs whose first argument is on the CPU, and every call where
    ``graphs`` is False, run ``function`` itself.

    The first ``resident`` arguments are read in place rather than copied into the graph (a large
    buffer its owner keeps, such as the step's frames): the graph is captured for their address too,
    so the owner must keep them where they are between calls. The rest are copied into the graph's
    own inputs. Not for concurrent calls on one stream (BlazePose launches one call at a time)."""

    def __init__(self, function: Callable[..., tuple[torch.Tensor, ...]], graphs: bool = True,
                 resident: int = 0) -> None:
        self.function = function
        self.graphs = graphs
        self.resident = resident
        self._graphs: dict[tuple[Hashable, ...], _Captured] = {}
        self._pools: dict[int, Any] = {}  # per stream: the graphs of one stream never run at once

    def __call__(self, *inputs: Argument) -> tuple[torch.Tensor, ...]:
        first = inputs[0]
        if not self.graphs or not isinstance(first, torch.Tensor) or first.device.type != "cuda":
            return self.function(*inputs)
        stream = torch.cuda.current_stream(first.device)
        key = (stream.cuda_stream, *(self._signature(i, value) for i, value in enumerate(inputs)))
        captured = self._graphs.get(key)
        if captured is None:
            pool = self._pools.setdefault(stream.cuda_stream, torch.cuda.graph_pool_handle())
            captured = self._graphs[key] = _Captured(self.function, inputs, self.resident, stream, pool)
        return captured.run(inputs)

    def _signature(self, position: int, value: Argument) -> Hashable:
        if not isinstance(value, torch.Tensor):
            return value
        return (tuple(value.shape), value.dtype, value.data_ptr() if position < self.resident else None)

    @property
    def captured(self) -> int:
        """Graphs captured so far (signatures times streams)."""
        return len(self._graphs)


class _Captured:
    """One graph: its inputs (copies, or the resident arguments themselves), the function, its
    outputs (cloned out after each replay, as the next replay overwrites them)."""

    def __init__(self, function: Callable[..., tuple[torch.Tensor, ...]], example: tuple[Argument, ...],
                 resident: int, stream: torch.cuda.Stream, pool: Any) -> None:
        self.inputs = tuple(value.clone() if isinstance(value, torch.Tensor) and i >= resident else value
                            for i, value in enumerate(example))
        side = torch.cuda.Stream(stream.device)  # the first run (cuDNN's choices) outside the graph
        side.wait_stream(stream)
        with torch.cuda.stream(side):
            function(*self.inputs)
        stream.wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, **_THREAD_LOCAL):
            self.outputs = function(*self.inputs)

    def run(self, inputs: tuple[Argument, ...]) -> tuple[torch.Tensor, ...]:
        for mine, given in zip(self.inputs, inputs):
            if isinstance(mine, torch.Tensor) and isinstance(given, torch.Tensor):
                if mine.data_ptr() != given.data_ptr():  # a resident argument is the graph's input itself
                    mine.copy_(given)
        self.graph.replay()
        return tuple(out.clone() for out in self.outputs)
