"""ST-GCN on the project's GPU kernels (:mod:`stgcn_rt.kernels.ops`, written in OpenAI's Triton): both
streams stacked, two kernel launches per block.

The same function as :class:`STGCN` / :class:`TwoStreamSTGCN` with every BatchNorm folded (see
:mod:`stgcn_rt.model.optimized` for the folding); the ten blocks run in fp16 through
:func:`~stgcn_rt.kernels.ops.graph_conv` and
:func:`~stgcn_rt.kernels.ops.temporal_conv`, input normalisation with the motion
differences, and pooling with the classifier, in fp32 kernels of their own (with the tensor
memory accelerator's loads the last temporal convolution sums its rows for the classifier kernel,
which then pools them, instead of writing them for a pooling kernel). The streams of a
two-stream model are stacked on a leading axis, so each kernel launch serves both.
``kernels=True`` in the PyTorch runner selects it; the ONNX export never uses it.

With ``fp8_temporal`` (and the tensor memory accelerator's loads) the temporal convolutions
multiply fp8 (e4m3) operands with fp32 sums: the graph convolution before each writes its rows in
fp8, the weights are scaled per output channel, and the epilogue scales the sums back. At batch 1
their time follows the bytes they pull from L2, which fp8 halves; unlike int8, converting the
graph convolution's output costs it about what fp16 does, and e4m3's range needs no calibration
(see :func:`fp8_input_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from stgcn_rt.errors import StgcnError
from stgcn_rt.kernels.ops import (
    classify_row_sums,
    frame_planes,
    graph_conv,
    pool_and_classify,
    prepare_input,
    takes_tma_loads,
    temporal_conv,
)
from stgcn_rt.model.network import STGCN, STGCNBlock, TwoStreamSTGCN
from stgcn_rt.model.optimized import bn_scale_shift, conv_bias, fold_block, neighbour_table
from stgcn_rt.window import FRAMES


def neighbours_per_partition(adjacency: torch.Tensor, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each partition k and output joint w, the joints v with ``adjacency[k, v, w] != 0``.

    Returns ``index`` (K, depth, W) int32 and ``weight`` (K, depth, W): partition k's
    :func:`~stgcn_rt.model.optimized.neighbour_table`, padded with joint 0 at weight 0.
    """
    partitions, _, outputs = adjacency.shape
    index = torch.zeros(partitions, depth, outputs, dtype=torch.int32)
    weight = torch.zeros(partitions, depth, outputs, dtype=torch.float32)
    for k in range(partitions):
        rows, coefficients = neighbour_table(adjacency[k:k + 1])  # one partition: row v * 1 + 0 is joint v
        index[k, :len(rows)] = rows.to(torch.int32)
        weight[k, :len(rows)] = coefficients.float()
    return index, weight


def _kernel_layouts(block: STGCNBlock, adjacency: torch.Tensor, depth: int) -> dict[str, torch.Tensor]:
    """One block's folded parameters (:func:`~stgcn_rt.model.optimized.fold_block`) in the kernels'
    layouts, fp32."""
    folded = fold_block(block)
    # the bias enters every (k, v) row before the joint mixing: output joint w gets it weighted by
    # its column sums of the adjacency
    column_sums = adjacency.sum(dim=1)  # (K, W)
    index, weight = neighbours_per_partition(adjacency, depth)
    params = {"index": index, "weight": weight, "gcn_w": folded.gcn_weight.transpose(1, 2),  # (K, C_in, C_out)
              "gcn_bias": column_sums.t() @ folded.gcn_bias + folded.gcn_shift,  # (W, C_out)
              "tcn_w": folded.tcn_weight[:, :, :, 0].permute(2, 1, 0),  # (taps, C_in, C_out)
              "tcn_bias": folded.tcn_bias}
    if folded.res_weight is not None and folded.res_bias is not None:
        params["res_w"] = folded.res_weight.t()
        params["tcn_bias"] = folded.tcn_bias + folded.res_bias
    return params


#: e4m3's largest finite value: an fp8 temporal convolution's input saturates there
FP8_MAX = 448.0
#: how far below :data:`FP8_MAX` the largest input :func:`range_windows` bring is kept, in factors of
#: two: room for windows that reach further than those
FP8_HEADROOM_BITS = 3


def range_windows(joints: int, channels: int) -> torch.Tensor:
    """Windows that show a model's activation ranges without the user's data: the shipped real
    MediaPipe windows where the model takes them, and uniform [0, 1) keypoints (the contract's range)."""
    windows = [torch.rand(4, channels, FRAMES, joints, 1, generator=torch.Generator().manual_seed(0))]
    if (joints, channels) == (33, 3):
        from stgcn_rt.data import real_windows

        windows.append(torch.from_numpy(real_windows(stride=50)))
    return torch.cat(windows)


def temporal_input_maxima(streams: list[STGCN], windows: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """(blocks, S): the largest value entering each block's temporal convolution, per stream, when
    ``model`` (whose streams are ``streams``) runs ``windows`` in fp32."""
    maxima = torch.zeros(len(streams[0].blocks), len(streams))
    hooks = []
    for s, stream in enumerate(streams):
        for b, block in enumerate(stream.blocks):
            def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], b: int = b, s: int = s) -> None:
                maxima[b, s] = torch.maximum(maxima[b, s], inputs[0].detach().float().amax())
            hooks.append(block.temporal_conv.register_forward_pre_hook(record))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for part in windows.split(8):
                model(part.to(device))
    finally:
        for hook in hooks:
            hook.remove()
    return maxima


def fp8_input_scale(maxima: torch.Tensor) -> torch.Tensor:
    """Per stream, the power of two at most 1 that keeps ``maxima`` :data:`FP8_HEADROOM_BITS` factors
    of two below :data:`FP8_MAX` (1 for every model measured: their inputs stayed under 20)."""
    room = torch.floor(torch.log2(FP8_MAX / maxima.clamp(min=1e-30))) - FP8_HEADROOM_BITS
    return torch.exp2(room.clamp(max=0))


class KernelBlock(nn.Module):
    """One block of every stream: (S, R, C_in) fp16 -> (S, R', C_out) fp16."""

    index: torch.Tensor
    weight: torch.Tensor
    gcn_w: torch.Tensor
    gcn_bias: torch.Tensor
    tcn_w: torch.Tensor
    tcn_bias: torch.Tensor
    res_w: torch.Tensor | None
    tcn_w8: torch.Tensor | None
    tcn_scale: torch.Tensor | None

    def __init__(self, blocks: list[STGCNBlock], adjacencies: list[torch.Tensor]) -> None:
        super().__init__()
        # neighbours per partition, the largest over the streams (the tables are padded to the deepest)
        self.depths = tuple(int(d) for d in torch.stack([(a != 0).sum(dim=1).amax(dim=1) for a in adjacencies])
                            .amax(dim=0).clamp(min=1))
        if max(self.depths) > 15:
            raise StgcnError(f"the GPU kernels take at most 15 neighbours per joint and partition; this "
                             f"checkpoint's graph has {max(self.depths)}: use the optimized rewrite instead")
        depth = max(self.depths)
        folded = [_kernel_layouts(b, a.detach(), depth) for b, a in zip(blocks, adjacencies)]
        for name in folded[0]:
            self.register_buffer(name, torch.stack([f[name] for f in folded]).detach().contiguous())
        self.stride = blocks[0].stride
        self.residual_kind = blocks[0].residual_kind
        if "res_w" not in folded[0]:
            self.res_w = None
        for name in ("tcn_w8", "tcn_scale"):  # set by quantize_temporal
            self.register_buffer(name, None)

    def quantize_temporal(self, scale: torch.Tensor) -> None:
        """fp8 (e4m3) operands for the temporal convolution. Its input is the graph convolution's
        output times ``scale`` (S,) per stream, a power of two folded into the graph convolution's
        weights and bias (ReLU commutes with it); the weights are scaled per output channel so that
        each channel's largest reaches e4m3's 448. The epilogue undoes both."""
        w = self.tcn_w.float()  # (S, taps, C_in, C_out)
        w_scale = w.abs().amax(dim=(1, 2)).clamp(min=1e-12) / FP8_MAX  # (S, C_out)
        self.tcn_w8 = (w / w_scale[:, None, None, :]).to(torch.float8_e4m3fn).transpose(2, 3) \
            .contiguous()  # (S, taps, C_out, C_in): 8-bit products take both operands K-major
        self.tcn_scale = (w_scale / scale[:, None]).contiguous()
        self.gcn_w = self.gcn_w * scale.to(self.gcn_w.dtype)[:, None, None, None]
        self.gcn_bias = self.gcn_bias * scale[:, None, None]

    def takes_fp8(self, tma: bool) -> bool:
        """Whether the temporal convolution multiplies fp8 operands: quantized (:meth:`quantize_temporal`,
        which :class:`KernelNetwork` runs where :meth:`can_take_fp8`) and asked for the tensor memory
        accelerator's loads."""
        return self.tcn_w8 is not None and self.takes_tma_loads(tma)

    def can_take_fp8(self, tma: bool) -> bool:
        """Whether :meth:`quantize_temporal` would give this block fp8 operands: the tensor memory
        accelerator's loads and fp8 rows of whole 16-byte units (the descriptors' strides)."""
        return self.takes_tma_loads(tma) and self.tcn_w.shape[-2] % 16 == 0

    def set_dtype(self, dtype: torch.dtype) -> None:
        """Weights in ``dtype``; the tables, biases and accumulation stay fp32."""
        for name in ("gcn_w", "tcn_w", "res_w"):
            if getattr(self, name, None) is not None:
                setattr(self, name, getattr(self, name).to(dtype))

    def forward(self, x: torch.Tensor, frames: int, joints: int, tma: bool = False, pool: bool = False
                ) -> torch.Tensor:
        """The block's rows, or with ``pool`` its temporal convolution's row-group sums (:meth:`temporal`)."""
        return self.temporal(self.graph(x, frames, joints, tma), x, frames, joints, tma, pool)

    def takes_tma_loads(self, tma: bool) -> bool:
        """Whether this block's temporal convolution runs the tensor-memory-accelerator kernel when asked
        to (``tma``): :func:`~stgcn_rt.kernels.ops.takes_tma_loads` for its channels."""
        return takes_tma_loads(tma, *self.tcn_w.shape[-2:])

    def graph(self, x: torch.Tensor, frames: int, joints: int, tma: bool = False) -> torch.Tensor:
        """The graph convolution, its output in the frame layout :meth:`temporal` reads."""
        planes = frame_planes(tma, self.stride, *self.tcn_w.shape[-2:])
        return graph_conv(x, self.index, self.weight, self.depths, self.gcn_w, self.gcn_bias, joints, frames, planes,
                          torch.float8_e4m3fn if self.takes_fp8(tma) else None)

    def temporal(self, mixed: torch.Tensor, x: torch.Tensor, frames: int, joints: int, tma: bool = False,
                 pool: bool = False) -> torch.Tensor:
        """The temporal convolution of :meth:`graph`'s output ``mixed``, with the residual of the block
        input ``x``; ``pool``: its row-group sums instead (:func:`~stgcn_rt.kernels.ops.temporal_conv`)."""
        residual = None if self.residual_kind == "none" else x
        if self.takes_fp8(tma):  # the rule by which graph() wrote ``mixed`` in fp8
            assert self.tcn_w8 is not None
            return temporal_conv(mixed, self.tcn_w8, self.tcn_bias, frames, joints, self.stride, residual, self.res_w,
                                 tma, pool, scale=self.tcn_scale, out_dtype=x.dtype)
        return temporal_conv(mixed, self.tcn_w, self.tcn_bias, frames, joints, self.stride, residual, self.res_w,
                             tma, pool)


class KernelNetwork(nn.Module):
    """(N, C, T, V, M) fp32 skeletons -> (N, classes) fp32 logits, for one or two streams.

    ``tma_loads``: the temporal convolutions load through the tensor memory accelerator
    (:func:`~stgcn_rt.kernels.ops.tma_available` says where it exists); with them,
    ``pool_in_epilogue`` has the last one hand row-group sums to the classifier kernel instead of
    its rows to a pooling kernel. ``fp8_temporal``, with those loads only: the temporal
    convolutions multiply fp8 operands (module docstring)."""

    input_scale: torch.Tensor
    input_shift: torch.Tensor
    fcn_w: torch.Tensor
    fcn_b: torch.Tensor
    blocks: Sequence[KernelBlock]
    motion: str | None

    def __init__(self, model: nn.Module, tma_loads: bool = False, pool_in_epilogue: bool = True,
                 fp8_temporal: bool = False) -> None:
        super().__init__()
        self.tma_loads, self.pool_in_epilogue = tma_loads, pool_in_epilogue
        if isinstance(model, TwoStreamSTGCN):
            streams, self.motion = [model.origin_stream, model.motion_stream], model.motion
        elif isinstance(model, STGCN):
            streams, self.motion = [model], None
        else:
            raise TypeError(f"no GPU kernels for a {type(model).__name__}: expected STGCN or TwoStreamSTGCN")
        joints = streams[0].A.shape[-1]
        scales, shifts = zip(*(bn_scale_shift(s.data_bn) for s in streams))  # per (joint, channel)
        for name, values in (("input_scale", scales), ("input_shift", shifts)):
            self.register_buffer(name, torch.stack([s.reshape(joints, -1) for s in values]).detach().contiguous())
        blocks = [KernelBlock([s.blocks[i] for s in streams], [s.adjacency(i) for s in streams])
                  for i in range(len(streams[0].blocks))]
        self.blocks = cast(Sequence[KernelBlock], nn.ModuleList(blocks))
        # (S, C, classes) and (S, classes): both classifiers in one kernel
        weights = [s.fcn.weight[:, :, 0, 0].t() for s in streams]
        self.register_buffer("fcn_w", torch.stack(weights).detach().contiguous())
        self.register_buffer("fcn_b", torch.stack([conv_bias(s.fcn) for s in streams]).detach().contiguous())
        self.block_dtype = torch.float32
        if fp8_temporal:
            if not tma_loads:
                raise StgcnError("fp8 temporal convolutions need the tensor memory accelerator's loads (a Hopper "
                                 "or newer GPU and triton 3.4 or later; stgcn-rt check says what this machine has): "
                                 "use --fast kernels, the fp16 kernels, instead")
            maxima = temporal_input_maxima(streams, range_windows(joints, streams[0].data_bn.num_features // joints),
                                           model)
            for block, block_maxima in zip(self.blocks, maxima):
                if block.can_take_fp8(tma_loads):
                    block.quantize_temporal(fp8_input_scale(block_maxima))

    def set_block_dtype(self, dtype: torch.dtype) -> None:
        for block in self.blocks:
            block.set_dtype(dtype)
        self.block_dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x)[:, 0]

    def scores(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 2, classes) fp32: [:, 0] the logits, [:, 1] the probabilities. ``x`` on the GPU or in
        pinned host memory; written into ``out`` if given (GPU or pinned host memory): a CUDA graph
        of this call moves no data but through the kernels themselves."""
        n, _, frames, v, persons = x.shape
        y = prepare_input(x, self.input_scale, self.input_shift, self.motion, self.block_dtype)
        *body, last = self.blocks
        for block in body:
            y = block(y, frames, v, self.tma_loads)
            frames = (frames - 1) // block.stride + 1
        # with TMA loads the last temporal convolution sums its rows in groups instead of storing them,
        # and the classifier kernel pools those sums (no pooling kernel, no rows written and read back)
        pool = self.pool_in_epilogue and last.takes_tma_loads(self.tma_loads)
        y = last(y, frames, v, self.tma_loads, pool)
        if not pool:
            return pool_and_classify(y, n, self.fcn_w, self.fcn_b, out)
        per_window = persons * ((frames - 1) // last.stride + 1) * v
        return classify_row_sums(y, n, per_window, self.fcn_w, self.fcn_b, out)
