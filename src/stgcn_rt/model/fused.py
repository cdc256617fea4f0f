"""An inference-only rewrite of the two-stream network: both streams in one set of kernels.

Same function as :class:`TwoStreamSTGCN` (checked to 1e-5 in fp32), fewer and larger kernels:

- the two streams become the two groups of grouped convolutions: channels [0:C] are the origin
  stream, [C:2C] the motion stream, so each layer is one launch instead of two;
- every BatchNorm after a convolution is folded into it (tcn.3 into tcn.2, residual.1 into
  residual.0); the BatchNorm after the graph MatMul (tcn.0) folds its scale into the graph
  convolution and keeps its shift as a bias added after the MatMul;
- the K partitions' adjacency times edge importance is precomputed, per stream and block, and the
  graph step is one batched MatMul for both streams.

Built from a loaded model with :func:`fuse_two_stream`; the runner uses it with ``optimize=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stgcn_rt.model.network import STGCN, TwoStreamSTGCN, motion_of


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _grouped(convs: list[nn.Conv2d], scales: list[torch.Tensor], shifts: list[torch.Tensor]) -> nn.Conv2d:
    """One grouped convolution from per-stream convolutions, each followed by ``* scale + shift``."""
    first = convs[0]
    fused = nn.Conv2d(first.in_channels * 2, first.out_channels * 2, first.kernel_size, first.stride,
                      first.padding, groups=2, bias=True)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([c.weight * s[:, None, None, None] for c, s in zip(convs, scales, strict=True)]))
        fused.bias.copy_(torch.cat([c.bias * s + h for c, s, h in zip(convs, scales, shifts, strict=True)]))
    return fused


class FusedBlock(nn.Module):
    def __init__(self, blocks: list, adjacency: list[torch.Tensor]) -> None:
        super().__init__()
        partitions = blocks[0].gcn.partitions
        out_channels = blocks[0].tcn[2].out_channels
        self.partitions, self.out_channels = partitions, out_channels
        # tcn.0 BN after the graph MatMul: its scale goes into the graph convolution (per output
        # channel of every partition), its shift stays as a bias after the MatMul
        scales, shifts = zip(*(_bn_scale_shift(b.tcn[0]) for b in blocks), strict=True)
        gcn_scale = [s.repeat(partitions) for s in scales]
        self.gcn = _grouped([b.gcn.conv for b in blocks], gcn_scale, [torch.zeros_like(s) for s in gcn_scale])
        self.register_buffer("gcn_shift", torch.cat(shifts)[None, :, None, None].detach().clone())
        # (2, 1, K*V, V): the two streams' adjacency times edge importance
        self.register_buffer("adjacency", torch.stack([a.reshape(-1, a.shape[-1]) for a in adjacency])[:, None])
        tcn_bn = [_bn_scale_shift(b.tcn[3]) for b in blocks]
        self.tcn = _grouped([b.tcn[2] for b in blocks], [s for s, _ in tcn_bn], [h for _, h in tcn_bn])
        self.residual_kind = blocks[0].residual_kind
        if self.residual_kind == "conv":
            res_bn = [_bn_scale_shift(b.residual[1]) for b in blocks]
            self.residual = _grouped([b.residual[0] for b in blocks], [s for s, _ in res_bn], [h for _, h in res_bn])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        k, c = self.partitions, self.out_channels
        y = self.gcn(x)  # (n, 2*K*C, t, v): [stream][partition][channel]
        y = y.reshape(n, 2, k, c, t, v).permute(0, 1, 3, 4, 2, 5).reshape(n, 2, c, t, k * v)
        y = torch.matmul(y, self.adjacency).reshape(n, 2 * c, t, v) + self.gcn_shift
        y = self.tcn(F.relu(y))
        if self.residual_kind == "identity":
            y = y + x
        elif self.residual_kind == "conv":
            y = y + self.residual(x)
        return F.relu(y)


class FusedTwoStream(nn.Module):
    def __init__(self, model: TwoStreamSTGCN) -> None:
        super().__init__()
        streams: list[STGCN] = [model.origin_stream, model.motion_stream]
        self.motion = model.motion
        self.in_channels = streams[0].data_bn.num_features // streams[0].A.shape[-1]
        scale_shift = [_bn_scale_shift(s.data_bn) for s in streams]
        self.register_buffer("input_scale", torch.cat([s for s, _ in scale_shift]).detach().clone())
        self.register_buffer("input_shift", torch.cat([h for _, h in scale_shift]).detach().clone())
        blocks = []
        for i in range(len(streams[0].st_gcn_networks)):
            adjacency = [s.A if s.edge_importance is None else s.A * s.edge_importance[i] for s in streams]
            blocks.append(FusedBlock([s.st_gcn_networks[i] for s in streams], [a.detach() for a in adjacency]))
        self.blocks = nn.ModuleList(blocks)
        ones = [torch.ones(s.fcn.out_channels) for s in streams]
        self.fcn = _grouped([s.fcn for s in streams], ones, [torch.zeros_like(o) for o in ones])
        self.num_classes = streams[0].fcn.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        both = torch.stack([x, motion_of(x, self.motion)], dim=1)  # (n, 2, c, t, v, m)
        # data_bn of each stream: an affine per (joint, channel), as (stream, v, c)
        both = both.permute(0, 5, 1, 4, 2, 3).reshape(n * m, 2 * v * c, t)
        both = both * self.input_scale[:, None] + self.input_shift[:, None]
        y = both.reshape(n * m, 2, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, 2 * c, t, v)
        for block in self.blocks:
            y = block(y)
        y = y.sum(dim=(2, 3)) * (1.0 / (y.shape[2] * y.shape[3]))
        y = y.reshape(n, m, -1).sum(dim=1) * (1.0 / m) if m > 1 else y.reshape(n, -1)
        logits = self.fcn(y[:, :, None, None]).reshape(n, 2, self.num_classes)
        return logits.sum(dim=1)


def fuse_two_stream(model: nn.Module) -> nn.Module:
    """The fused equivalent of a two-stream model (eval mode); a single-stream model is returned as is."""
    if not isinstance(model, TwoStreamSTGCN):
        return model
    return FusedTwoStream(model.eval()).eval()
