"""PyTorch runner: runs the network :mod:`stgcn_rt.runtime.networks` builds, eagerly or through a CUDA
graph per batch bucket (:mod:`stgcn_rt.runtime.cuda_graphs`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from stgcn_rt.errors import StgcnError
from stgcn_rt.model.checkpoint import LoadedModel, load_checkpoint
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.runtime.cuda_graphs import (
    LOGITS,
    PROBABILITIES,
    CapturedBatch,
    PinnedStaging,
    bucket_above,
    buckets_up_to,
)
from stgcn_rt.runtime.networks import NetworkOptions, resolve_device
from stgcn_rt.window import FRAMES


class TorchClassifier(Classifier):
    """PyTorch runner.

    ``network`` options (keywords, see :class:`~stgcn_rt.runtime.networks.NetworkOptions`) choose what
    runs: the plain network (the reference; default), ``optimize=True`` (the inference rewrite, best
    with ``compile=True, cuda_graphs=True``), or ``kernels=True`` (the project's GPU kernels: CUDA,
    fp16, best with ``cuda_graphs=True``; ``fp8_temporal=True`` on Hopper GPUs). ``triton_kernels`` is
    the old name of ``kernels``.

    With ``cuda_graphs=True`` every batch bucket gets a captured graph; the graphs share one memory
    pool unless ``shared_graph_memory=False`` (then each holds its own, about twice the memory).
    """

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
        shared_graph_memory: bool = True,
        layout: str | None = None,
        center: int | None = None,
        motion: str | None = None,
        classes: list[str] | None = None,
        **network: Any,
    ) -> None:
        options = NetworkOptions.from_options(precision, network)
        self._device = resolve_device(device)
        if cuda_graphs and self._device.type != "cuda":
            raise StgcnError("fp16 and CUDA graphs need a CUDA device: use --device cuda or fp32")
        options.check(self._device)  # before a checkpoint is read: a mistake is told at once
        loaded = model if isinstance(model, LoadedModel) else load_checkpoint(
            model, layout=layout, center=center, motion=motion, classes=classes
        )
        self.loaded = loaded
        self.network_options = options
        self.untrained = loaded.untrained
        self.precision = precision
        self.classes = list(loaded.config.classes)
        self.device = str(self._device)
        config = loaded.config
        self.input_shape = (None, config.in_channels, seq_len, config.num_joints, persons)
        self.model: Any = options.build(loaded.model, self._device)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple[Any, ...], CapturedBatch] = {}
        # one classifier replays one graph at a time and copies each output out before the next
        # replay, so its graphs may share one pool: memory for the largest bucket, not for all
        self._graph_pool = torch.cuda.graph_pool_handle() if cuda_graphs and shared_graph_memory else None
        self._pinned = PinnedStaging()
        self._launch_slot = 1  # the graph slot of the last launch(); the next takes the other

    def _release(self) -> None:
        self._graphs.clear()
        self._pinned.clear()
        self.model = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def to_device(self, windows: Any) -> torch.Tensor:
        """Host windows to the model's device as fp32 (every network takes fp32 windows and casts its
        blocks' input itself); numpy goes through a pinned buffer."""
        if isinstance(windows, np.ndarray):
            host = (self._pinned.stage(windows) if self._device.type == "cuda"
                    else torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
            return host.to(self._device, torch.float32, non_blocking=True)
        return windows.to(self._device, torch.float32, non_blocking=True)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        # "fp32" means fp32: cuDNN would otherwise run convolutions in TF32 on Ampere and newer
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=self.precision != "fp32"):
            yield

    def _logits(self, windows: Any) -> np.ndarray:
        if self.cuda_graphs and isinstance(windows, np.ndarray):
            return self._replay_host(windows, LOGITS)  # numpy in and out of the graph's pinned buffers
        with self._inference():
            out = self.device_logits(self.to_device(windows))
        return out.float().cpu().numpy()

    def device_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of fp32 windows already on this classifier's device, left there (through the bucket's
        CUDA graph with ``cuda_graphs``): the model's own time, without host copies, as a benchmark
        times it. Not checked: the caller made ``x`` with :meth:`to_device`."""
        with self._inference():
            return self._replay(x) if self.cuda_graphs else self.model(x)

    def _bucket(self, count: int, shape: tuple[int, ...], host_io: bool, slot: int = 0) -> CapturedBatch:
        """The CUDA graph of the batch bucket (the next power of two) for ``count`` windows.

        Buckets bound the number of captured graphs (a capture costs ~100 ms) when a scheduler
        sends batches of every size. ``slot`` 1: a second graph of the bucket with its own pinned
        buffers, which :meth:`launch` alternates with the first.
        """
        bucket = bucket_above(count)
        key = (host_io, bucket, *shape, slot)
        if key not in self._graphs:
            with self._inference():
                self._graphs[key] = CapturedBatch(self.model, (bucket, *shape), self._device, host_io,
                                                  self._graph_pool)
        return self._graphs[key]

    def unpadded_batch(self, count: int) -> int:
        """With CUDA graphs, the largest batch bucket (power of two) that ``count`` fills."""
        return buckets_up_to(count)[-1] if self.cuda_graphs else count

    def _replay(self, x: torch.Tensor) -> torch.Tensor:
        """Device tensor in, device logits out, through the bucket's graph (padded with zeros)."""
        captured = self._bucket(x.shape[0], tuple(x.shape[1:]), host_io=False)
        return captured.run_device(x)

    def _host_graph(self, windows: np.ndarray, slot: int = 0) -> CapturedBatch:
        """The host-I/O graph of the bucket that holds ``windows`` (``slot``: see :meth:`_bucket`)."""
        return self._bucket(len(windows), tuple(windows.shape[1:]), host_io=True, slot=slot)

    def _replay_host(self, windows: np.ndarray, row: int) -> np.ndarray:
        """Host windows in, host logits or probabilities out (``row``), all inside one graph."""
        return self._host_graph(windows).run_host(windows, row)

    def _host_io_windows(self, windows: Any) -> np.ndarray | None:
        """``windows`` checked, where they go through a graph's pinned buffers (numpy windows with
        CUDA graphs); None where they take the path every backend takes."""
        if not (self.cuda_graphs and isinstance(windows, np.ndarray)):
            return None
        self.require_open()
        return self.check_windows(windows)

    def predict(self, windows: Any) -> np.ndarray:
        """With CUDA graphs, host windows get the probabilities the graph computed (fp32 softmax on
        the GPU); otherwise as every backend (softmax of the logits on the host)."""
        host = self._host_io_windows(windows)
        return super().predict(windows) if host is None else self.finite(self._replay_host(host, PROBABILITIES), host)

    def launch(self, windows: Any) -> Callable[[], np.ndarray]:
        """With CUDA graphs and host windows, the bucket's graph is replayed without waiting for it,
        the two graphs of the bucket in turn, so one batch's windows are copied in (and the one
        before's probabilities out) while the GPU runs the other; otherwise as every backend."""
        host = self._host_io_windows(windows)
        if host is None:
            return super().launch(windows)
        self._launch_slot ^= 1
        launched = self._host_graph(host, self._launch_slot).start_host(host)
        return lambda: self.finite(launched.rows(PROBABILITIES), host)

    @property
    def launches_asynchronously(self) -> bool:
        return self.cuda_graphs

    def warm_up(self, max_batch: int, progress: Callable[[int], None] | None = None) -> None:
        """Capture (or compile) every batch bucket up to ``max_batch`` now, not on live traffic: with
        CUDA graphs both graphs of each bucket (:meth:`launch`). ``progress`` gets each bucket once done."""
        config = self.loaded.config
        _, _, frames, _, persons = self.input_shape
        shape = (config.in_channels, frames or FRAMES, config.num_joints, persons or 1)
        for bucket in buckets_up_to(max_batch):
            windows = np.zeros((bucket, *shape), np.float32)
            self.logits(windows)
            if self.cuda_graphs:
                self._host_graph(windows, slot=1)
            if progress is not None:
                progress(bucket)
