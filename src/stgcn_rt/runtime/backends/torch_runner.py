"""PyTorch runner: eager fp32/fp16, optional torch.compile, optional CUDA graphs per batch size."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch

from stgcn_rt.errors import StgcnError
from stgcn_rt.model.checkpoint import LoadedModel, load_checkpoint
from stgcn_rt.model.fused import fuse_two_stream
from stgcn_rt.runtime.classifier import Classifier

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise StgcnError(f"unknown device '{device}': use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StgcnError(f"device {device} asked for, but PyTorch sees no CUDA GPU: use --device cpu")
    return dev


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


class TorchClassifier(Classifier):
    """PyTorch runner. ``optimize=True`` runs the fused two-stream rewrite (stgcn_rt.model.fused):
    the same function in fewer, larger kernels; off by default."""

    name = "PyTorch"

    def __init__(
        self,
        model: str | os.PathLike[str] | LoadedModel,
        device: str = "cpu",
        precision: str = "fp32",
        *,
        persons: int | None = None,
        seq_len: int | None = None,
        cuda_graphs: bool = False,
        compile: bool = False,
        optimize: bool = False,
        layout: str | None = None,
        center: int | None = None,
        motion: str | None = None,
        classes: list[str] | None = None,
    ) -> None:
        loaded = model if isinstance(model, LoadedModel) else load_checkpoint(
            model, layout=layout, center=center, motion=motion, classes=classes
        )
        if precision not in PRECISIONS:
            raise StgcnError(f"PyTorch precision must be one of {', '.join(PRECISIONS)}, got {precision}")
        self._device = resolve_device(device)
        if self._device.type != "cuda" and (precision != "fp32" or cuda_graphs):
            raise StgcnError("fp16 and CUDA graphs need a CUDA device: use --device cuda or fp32")
        self.loaded = loaded
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.classes = list(loaded.config.classes)
        self.device = str(self._device)
        config = loaded.config
        self.input_shape = (None, config.in_channels, seq_len, config.num_joints, persons)
        # a copy: moving or casting must not change the caller's LoadedModel
        model = fuse_two_stream(loaded.model) if optimize else copy.deepcopy(loaded.model)
        self.model: Any = model.to(self._device, self.dtype).eval()
        if compile:
            self.model = torch.compile(self.model, dynamic=False)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple[int, ...], tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pinned = PinnedStaging()

    def close(self) -> None:
        self._graphs.clear()
        self._pinned.clear()
        self.model = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def to_device(self, windows: Any) -> torch.Tensor:
        """Host windows to the model's device and dtype; numpy goes through a pinned buffer."""
        if isinstance(windows, np.ndarray):
            host = (self._pinned.stage(windows) if self._device.type == "cuda"
                    else torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
            return host.to(self._device, self.dtype, non_blocking=True)
        return windows.to(self._device, self.dtype, non_blocking=True)

    def _logits(self, windows: Any) -> np.ndarray:
        if self.model is None:
            raise StgcnError("this classifier was closed")
        x = self.to_device(windows)
        # "fp32" means fp32: cuDNN would otherwise run convolutions in TF32 on Ampere and newer
        with torch.inference_mode(), torch.backends.cudnn.flags(
                enabled=True, allow_tf32=self.precision != "fp32"):
            out = self._replay(x) if self.cuda_graphs else self.model(x)
        return out.float().cpu().numpy()

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        """Run through the CUDA graph of x's batch bucket (the next power of two), padding with zeros.

        Buckets bound the number of captured graphs (a capture costs ~100 ms) when a scheduler
        sends batches of every size.
        """
        count = x.shape[0]
        bucket = 1 << (count - 1).bit_length()
        key = (bucket, *x.shape[1:])
        if key not in self._graphs:
            self._graphs[key] = self._capture(torch.zeros(key, dtype=x.dtype, device=x.device))
        static_in, graph, static_out = self._graphs[key]
        static_in[:count].copy_(x)
        if count < bucket:
            static_in[count:].zero_()
        graph.replay()
        return static_out[:count].clone()

    def warm_up(self, max_batch: int) -> None:
        """Capture (or compile) every batch bucket up to ``max_batch`` now, not on live traffic."""
        c, t, v, m = self.input_shape[1:]
        shape = (c, t or 150, v, m or 1)
        bucket = 1
        while bucket <= max_batch:
            self.logits(np.zeros((bucket, *shape), np.float32))
            bucket *= 2

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor]:
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up kernels and allocator outside the graph
                self.model(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return static_in, graph, static_out
