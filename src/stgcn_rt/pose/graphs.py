"""BlazePose's PyTorch networks as CUDA graphs: one captured per batch shape and CUDA stream.

Eager PyTorch makes each of a network's operations a call from Python (188 in the landmark network,
162 in the detector), re-taking the interpreter lock after each; in the pipeline the decoders'
router, the main loop and the classifier's thread want that lock too, so a step's host side may
wait on them (docs/performance.md, session 29). A graph launches them all in one call. Graphs are
kept per stream because a replay writes its graph's own memory: two lanes (threads on their own
streams) replaying one graph at once would overwrite each other's crops.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from stgcn_rt.pose.runners import PoseNetwork

#: the classifier's thread may use the device while a lane captures: only this thread's calls are
#: checked during a capture (torch 2.1 and newer; older ones check every thread's)
_THREAD_LOCAL: dict[str, Any] = ({"capture_error_mode": "thread_local"}
                                 if "capture_error_mode" in inspect.signature(torch.cuda.graph).parameters else {})


class GraphedNetwork:
    """``network`` on CUDA inputs through a graph captured at the first call of each input shape on
    each stream (warm the shapes up before real work: a capture takes a moment and synchronises the
    device); CPU inputs, and every input where ``graphs`` is False, run eagerly. Not for concurrent
    calls on one stream (BlazePose launches one call at a time)."""

    def __init__(self, network: PoseNetwork, graphs: bool = True) -> None:
        self.network = network
        self.graphs = graphs
        self._graphs: dict[tuple[int, tuple[int, ...], torch.dtype], _Captured] = {}
        self._pools: dict[int, Any] = {}  # per stream: the graphs of one stream never run at once

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.graphs or crops.device.type != "cuda":
            return self.network(crops)
        stream = torch.cuda.current_stream(crops.device)
        key = (stream.cuda_stream, tuple(crops.shape), crops.dtype)
        captured = self._graphs.get(key)
        if captured is None:
            pool = self._pools.setdefault(stream.cuda_stream, torch.cuda.graph_pool_handle())
            captured = self._graphs[key] = _Captured(self.network, crops, stream, pool)
        return captured.run(crops)

    @property
    def captured(self) -> int:
        """Graphs captured so far (shapes times streams)."""
        return len(self._graphs)


class _Captured:
    """One graph: a static input, the network, its static outputs (cloned out after each replay)."""

    def __init__(self, network: PoseNetwork, example: torch.Tensor, stream: torch.cuda.Stream, pool: Any) -> None:
        self.static_in = example.clone()
        side = torch.cuda.Stream(example.device)  # the network's first run (cuDNN's choices) outside the graph
        side.wait_stream(stream)
        with torch.cuda.stream(side):
            network(self.static_in)
        stream.wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, **_THREAD_LOCAL):
            self.static_out = network(self.static_in)

    def run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.static_in.copy_(inputs)
        self.graph.replay()
        return tuple(out.clone() for out in self.static_out)
