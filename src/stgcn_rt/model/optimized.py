"""An inference-only rewrite of ST-GCN: channels-last activations and a sparse graph step.

The same function as :class:`STGCN` / :class:`TwoStreamSTGCN` (checked to 1e-5 in fp32), reorganised
for the GPU; ``optimize=True`` in the PyTorch runner selects it, the ONNX export never uses it.

- Activations stay ``(N, T, V, C)``: the 1x1 convolutions are single GEMMs over C, and the 9x1
  temporal convolution sees a channels-last tensor (the layout fp16 tensor-core kernels want), with
  no transposes between layers.
- The graph step ``einsum('nkctv,kvw->nctw')`` is dense over K x V x V, yet a skeleton's adjacency
  has about 100 non-zeros of K*V*V = 3,267 (MediaPipe 33). Each output joint gathers its few
  (partition, joint) neighbours with their weights (adjacency x edge importance, precomputed), which
  torch.compile fuses with the BatchNorm and ReLU that follow into one memory-bound kernel.
- Every BatchNorm is folded into the adjacent layer: tcn.0 into the graph convolution (its scale
  commutes with the joint mixing), tcn.3 into the temporal convolution, residual.1 into the
  residual convolution, data_bn into an input affine.
- The two streams of a two-stream model are independent until the final sum; on a GPU they can run
  on two CUDA streams (``parallel=True``), which a CUDA graph captures as parallel branches.

Input normalisation, pooling and the classifier stay fp32 when the blocks run in fp16
(:meth:`OptimizedStream.set_block_dtype`), as in :func:`stgcn_rt.model.network.set_block_precision`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from stgcn_rt.model.network import STGCN, TEMPORAL_KERNEL, STGCNBlock, TwoStreamSTGCN, motion_of


def bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def neighbour_table(adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The non-zeros of each output joint's column of the (K, V, W) adjacency.

    Returns ``index`` (D, W) into the flattened (joint, partition) axis, row ``v * K + k``, and
    ``weight`` (D, W); D is the largest neighbour count, shorter columns are padded with weight 0.
    """
    partitions, joints, outputs = adjacency.shape
    flat = adjacency.permute(1, 0, 2).reshape(joints * partitions, outputs)
    rows = [torch.nonzero(flat[:, w]).flatten() for w in range(outputs)]
    depth = max(1, max(len(r) for r in rows))
    index = torch.zeros(depth, outputs, dtype=torch.long)
    weight = torch.zeros(depth, outputs, dtype=flat.dtype)
    for w, r in enumerate(rows):
        index[:len(r), w] = r
        weight[:len(r), w] = flat[r, w]
    return index, weight


def _frozen(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone()


def conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    """A convolution's bias: every ST-GCN convolution is built with one."""
    return cast(torch.Tensor, conv.bias)


@dataclass
class FoldedBlock:
    """One block's parameters with every BatchNorm folded in, fp32, in the checkpoint's own layouts;
    each inference rewrite rearranges them for its kernels."""

    gcn_weight: torch.Tensor  # (K, C_out, C_in), scaled by the BatchNorm after the graph convolution
    gcn_bias: torch.Tensor  # (K, C_out), scaled; enters every (partition, joint) row before the mixing
    gcn_shift: torch.Tensor  # (C_out), added after the mixing
    tcn_weight: torch.Tensor  # (C_out, C_out, taps, 1)
    tcn_bias: torch.Tensor  # (C_out)
    res_weight: torch.Tensor | None  # (C_out, C_in), for a convolution residual
    res_bias: torch.Tensor | None  # (C_out)


def fold_block(block: STGCNBlock) -> FoldedBlock:
    partitions = block.gcn.partitions
    tconv = block.temporal_conv
    channels = tconv.out_channels
    scale, shift = bn_scale_shift(block.gcn_bn)
    conv = block.gcn.conv  # output channel k * C + c
    tcn_scale, tcn_shift = bn_scale_shift(block.temporal_bn)
    res_weight = res_bias = None
    if block.residual_kind == "conv":
        res, res_bn = block.residual_conv
        res_scale, res_shift = bn_scale_shift(res_bn)
        res_weight = _frozen(res.weight[:, :, 0, 0] * res_scale[:, None])
        res_bias = _frozen(conv_bias(res) * res_scale + res_shift)
    return FoldedBlock(
        gcn_weight=_frozen(conv.weight[:, :, 0, 0].reshape(partitions, channels, -1) * scale[None, :, None]),
        gcn_bias=_frozen(conv_bias(conv).reshape(partitions, channels) * scale), gcn_shift=_frozen(shift),
        tcn_weight=_frozen(tconv.weight * tcn_scale[:, None, None, None]),
        tcn_bias=_frozen(conv_bias(tconv) * tcn_scale + tcn_shift), res_weight=res_weight, res_bias=res_bias)


class OptimizedBlock(nn.Module):
    """One ST-GCN block on ``(B, T, V, C)`` activations, BatchNorms folded."""

    gcn_weight: torch.Tensor
    gcn_bias: torch.Tensor
    gcn_shift: torch.Tensor
    neighbour_index: torch.Tensor
    neighbour_weight: torch.Tensor
    tcn_weight: torch.Tensor
    tcn_bias: torch.Tensor
    res_weight: torch.Tensor
    res_bias: torch.Tensor

    def __init__(self, block: STGCNBlock, adjacency: torch.Tensor) -> None:
        super().__init__()
        folded = fold_block(block)
        partitions, channels, _ = folded.gcn_weight.shape
        self.partitions, self.channels = partitions, channels
        # GEMM output ordered (k, c): viewed as (..., V * K, C), the rows the neighbour table indexes
        self.register_buffer("gcn_weight", folded.gcn_weight.reshape(partitions * channels, -1).t().contiguous())
        self.register_buffer("gcn_bias", folded.gcn_bias.reshape(-1))
        self.register_buffer("gcn_shift", folded.gcn_shift)
        index, neighbour_weight = neighbour_table(adjacency.detach())
        self.depth = index.shape[0]
        self.register_buffer("neighbour_index", index.flatten())
        self.register_buffer("neighbour_weight", neighbour_weight[:, :, None].clone())
        self.stride = block.stride
        self.register_buffer("tcn_weight", folded.tcn_weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("tcn_bias", folded.tcn_bias)
        self.residual_kind = block.residual_kind
        if folded.res_weight is not None:
            self.register_buffer("res_weight", folded.res_weight.t().contiguous())
            self.register_buffer("res_bias", folded.res_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, joints, _ = x.shape
        z = torch.addmm(self.gcn_bias, x.reshape(-1, x.shape[-1]), self.gcn_weight)
        z = z.view(batch, frames, joints * self.partitions, self.channels)
        gathered = z[:, :, self.neighbour_index, :].view(batch, frames, self.depth, joints, self.channels)
        y = F.relu((gathered * self.neighbour_weight).sum(dim=2) + self.gcn_shift)
        y = F.conv2d(y.permute(0, 3, 1, 2), self.tcn_weight, self.tcn_bias, (self.stride, 1),
                     ((TEMPORAL_KERNEL - 1) // 2, 0)).permute(0, 2, 3, 1)
        if self.residual_kind == "identity":
            y = y + x
        elif self.residual_kind == "conv":
            strided = x[:, ::self.stride]
            y = y + torch.addmm(self.res_bias, strided.reshape(-1, strided.shape[-1]), self.res_weight).view(y.shape)
        return F.relu(y)


class OptimizedStream(nn.Module):
    """One stream: (N, C, T, V, M) fp32 skeletons -> (N, classes) fp32 logits."""

    input_scale: torch.Tensor
    input_shift: torch.Tensor
    fcn_weight: torch.Tensor
    fcn_bias: torch.Tensor

    def __init__(self, stream: STGCN) -> None:
        super().__init__()
        joints = stream.A.shape[-1]
        scale, shift = bn_scale_shift(stream.data_bn)  # per (joint, channel), joint-major
        self.register_buffer("input_scale", _frozen(scale.reshape(joints, -1)))
        self.register_buffer("input_shift", _frozen(shift.reshape(joints, -1)))
        blocks = []
        for i, block in enumerate(stream.blocks):
            blocks.append(OptimizedBlock(block, stream.adjacency(i)))
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("fcn_weight", _frozen(stream.fcn.weight[:, :, 0, 0]))
        self.register_buffer("fcn_bias", _frozen(conv_bias(stream.fcn)))
        self.block_dtype = torch.float32

    def set_block_dtype(self, dtype: torch.dtype) -> None:
        self.blocks.to(dtype)
        self.block_dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        y = x.permute(0, 4, 2, 3, 1).reshape(n * m, t, v, c) * self.input_scale + self.input_shift
        y = y.to(self.block_dtype)
        for block in self.blocks:
            y = block(y)
        pooled = y.float().sum(dim=(1, 2)) * (1.0 / (y.shape[1] * y.shape[2]))
        pooled = pooled.reshape(n, m, -1).sum(dim=1) * (1.0 / m) if m > 1 else pooled.reshape(n, -1)
        return F.linear(pooled, self.fcn_weight, self.fcn_bias)


class OptimizedTwoStream(nn.Module):
    """origin(x) + motion(motion_of(x)), optionally on two CUDA streams."""

    def __init__(self, model: TwoStreamSTGCN, parallel: bool = True) -> None:
        super().__init__()
        self.motion = model.motion
        self.origin = OptimizedStream(model.origin_stream)
        self.moving = OptimizedStream(model.motion_stream)
        self.parallel = parallel
        self._side: torch.cuda.Stream | None = None

    def set_block_dtype(self, dtype: torch.dtype) -> None:
        self.origin.set_block_dtype(dtype)
        self.moving.set_block_dtype(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        origin, moving = self.origin, self.moving
        if not (self.parallel and x.is_cuda):
            return origin(x) + moving(motion_of(x, self.motion))
        if self._side is None or self._side.device != x.device:
            self._side = torch.cuda.Stream(x.device)
        main = torch.cuda.current_stream(x.device)
        # outside a graph capture the allocator must know which stream uses which block; inside
        # one, the graph's private memory pool lives as long as the graph
        eager = not torch.cuda.is_current_stream_capturing()
        self._side.wait_stream(main)
        with torch.cuda.stream(self._side):
            if eager:
                x.record_stream(self._side)
            side_logits = moving(motion_of(x, self.motion))
        main_logits = origin(x)
        main.wait_stream(self._side)
        if eager:
            side_logits.record_stream(main)
        return main_logits + side_logits


def optimize_model(model: nn.Module, parallel: bool = True) -> OptimizedStream | OptimizedTwoStream:
    """The optimised equivalent of a loaded (eval-mode) single- or two-stream model."""
    model = model.eval()
    if isinstance(model, TwoStreamSTGCN):
        return OptimizedTwoStream(model, parallel).eval()
    if isinstance(model, STGCN):
        return OptimizedStream(model).eval()
    raise TypeError(f"cannot optimise a {type(model).__name__}: expected STGCN or TwoStreamSTGCN")
