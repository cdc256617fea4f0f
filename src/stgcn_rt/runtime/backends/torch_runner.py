"""PyTorch runner: eager fp32/fp16, optional torch.compile, optional CUDA graphs per batch size."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.model.checkpoint import LoadedModel, load_checkpoint
from stgcn_rt.model.network import set_block_precision
from stgcn_rt.model.optimized import optimize_model
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.runtime.environment import triton_too_old

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise StgcnError(f"unknown device '{device}': use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StgcnError(f"device {device} asked for, but PyTorch sees no CUDA GPU: use --device cpu")
    return dev


def compile_model(model: torch.nn.Module, autotune: bool = False) -> Any:
    """torch.compile the model; a model with parallel streams compiles each stream in place instead,
    so the two-stream fork and join stay outside the compiled code.

    ``dynamic=None``: the first batch size compiles static, a second one compiles a batch-dynamic
    graph, so a scheduler's many batch buckets cost two compilations, not one each. ``autotune``
    times candidate GEMM/convolution kernels for each shape (minutes of compilation); the runner
    captures its own CUDA graphs, so Inductor's are left off.
    """
    options: dict[str, Any] = {"dynamic": None}
    if autotune:
        options["mode"] = "max-autotune-no-cudagraphs"
    streams = getattr(model, "streams", None)
    if streams is not None and getattr(model, "parallel", False):
        for stream in streams:
            stream.compile(**options)
        return model
    return torch.compile(model, **options)


def triton_network(model: torch.nn.Module, device: torch.device, precision: str, compile: bool,
                   tma_loads: bool = True, fp8_temporal: bool = False) -> torch.nn.Module:
    """The model on the project's Triton kernels, blocks in fp16; with ``tma_loads`` the temporal
    convolutions load through the tensor memory accelerator where the GPU has one, and with
    ``fp8_temporal`` too they multiply fp8 operands."""
    if compile:
        raise StgcnError("the Triton kernels replace torch.compile's: turn compile off")
    if precision != "fp16" or device.type != "cuda":
        raise StgcnError("the Triton kernels run fp16 on a CUDA GPU: use --device cuda and fp16")
    triton = require("triton", "kernels", "the Triton kernels (triton_kernels=True)")
    if triton_too_old(triton.__version__):
        raise StgcnError(f"the Triton kernels need triton >= 3.2 and this environment has {triton.__version__} "
                         "(torch 2.0 brings 2.0): pip install 'stgcn-rt[kernels]' where your torch allows it, "
                         "or leave the kernels off")
    from stgcn_rt.model.triton_kernels import tma_available
    from stgcn_rt.model.triton_model import TritonSTGCN

    network = TritonSTGCN(model.eval(), tma_loads and tma_available(device), fp8_temporal=fp8_temporal).to(device)
    network.set_block_dtype(PRECISIONS[precision])
    return network


def plain_network(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` (moving or casting must not change the caller's) with its blocks in ``dtype``.

    Input normalisation, pooling and the classifier stay fp32 whatever ``dtype`` is: the pooling
    sums over T x V positions, which pass fp16's 65,504 once the last block's activations reach the
    hundreds (:func:`~stgcn_rt.model.network.set_block_precision`).
    """
    return set_block_precision(copy.deepcopy(model), dtype).eval()


def bucket_above(count: int) -> int:
    """The batch bucket that holds ``count`` windows: batch buckets are the powers of two."""
    return 1 << (count - 1).bit_length()


def buckets_up_to(count: int) -> list[int]:
    """The batch buckets no larger than ``count``, smallest first."""
    return [1 << i for i in range(count.bit_length())]


#: the largest batch bucket whose windows a model with ``scores`` (the Triton kernels) reads straight
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
    and one synchronisation. A model with a ``scores(x, out)`` method (the Triton kernels) reads and
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


class TorchClassifier(Classifier):
    """PyTorch runner.

    ``optimize=True`` runs the inference rewrite in :mod:`stgcn_rt.model.optimized` (channels-last,
    sparse graph step, folded BatchNorms, on CUDA the two streams on two CUDA streams unless
    ``parallel_streams=False``); best with ``compile=True, cuda_graphs=True`` (``autotune=True``
    makes torch.compile time candidate kernels per shape). Off by default: the
    plain network is the reference.

    ``triton_kernels=True`` runs the blocks on the project's Triton kernels instead
    (:mod:`stgcn_rt.model.triton_model`: both streams in each launch, two launches per block; CUDA,
    fp16, no torch.compile), best with ``cuda_graphs=True``; on Hopper GPUs their temporal
    convolutions load through the tensor memory accelerator (``tma_loads=False``: pointer loads),
    and with ``fp8_temporal=True`` they multiply fp8 operands (:mod:`stgcn_rt.model.triton_model`).

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
        compile: bool = False,
        autotune: bool = False,
        optimize: bool = False,
        parallel_streams: bool = True,
        triton_kernels: bool = False,
        tma_loads: bool = True,
        fp8_temporal: bool = False,
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
        self.untrained = loaded.untrained
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.classes = list(loaded.config.classes)
        self.device = str(self._device)
        config = loaded.config
        self.input_shape = (None, config.in_channels, seq_len, config.num_joints, persons)
        if autotune and not compile:
            raise StgcnError("autotune tunes torch.compile's kernels: turn compile on too")
        if fp8_temporal and not triton_kernels:
            raise StgcnError("fp8 temporal convolutions are the Triton kernels' option: turn triton_kernels on too")
        network: torch.nn.Module
        if triton_kernels:
            network = triton_network(loaded.model, self._device, precision, compile, tma_loads, fp8_temporal)
        elif optimize:
            # the rewrite keeps input normalisation, pooling and the classifier in fp32
            optimized = optimize_model(loaded.model, parallel=parallel_streams).to(self._device)
            optimized.set_block_dtype(self.dtype)
            network = optimized
        else:
            network = plain_network(loaded.model, self.dtype).to(self._device)
        self.model: Any = compile_model(network, autotune) if compile else network
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
            x = self.to_device(windows)
            out = self._replay(x) if self.cuda_graphs else self.model(x)
        return out.float().cpu().numpy()

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
        shape = (config.in_channels, frames or 150, config.num_joints, persons or 1)
        for bucket in buckets_up_to(max_batch):
            windows = np.zeros((bucket, *shape), np.float32)
            self.logits(windows)
            if self.cuda_graphs:
                self._host_graph(windows, slot=1)
            if progress is not None:
                progress(bucket)
