"""Channels-last, sparse-graph rewrite of the two-stream network (inference only)."""
from __future__ import annotations
import torch
import torch.nn.functional as F
from torch import nn
from stgcn_rt.model.network import STGCN, TwoStreamSTGCN, motion_of


def _bn(bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def neighbour_table(adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D, W) indices into the flattened (v, k) axis and their weights: the non-zeros of each column."""
    k, v, w = adjacency.shape
    flat = adjacency.permute(1, 0, 2).reshape(v * k, w)  # row v*K + k
    nonzero = [torch.nonzero(flat[:, j]).flatten() for j in range(w)]
    depth = max(len(n) for n in nonzero)
    index = torch.zeros(depth, w, dtype=torch.long)
    weight = torch.zeros(depth, w, dtype=flat.dtype)
    for j, rows in enumerate(nonzero):
        index[:len(rows), j] = rows
        weight[:len(rows), j] = flat[rows, j]
    return index, weight


class SparseBlock(nn.Module):
    def __init__(self, block, adjacency: torch.Tensor) -> None:
        super().__init__()
        k = block.gcn.partitions
        c = block.tcn[2].out_channels
        self.k, self.c = k, c
        s0, h0 = _bn(block.tcn[0])
        conv = block.gcn.conv  # (K*C, Ci, 1, 1), out channel k*C + c
        w = conv.weight[:, :, 0, 0].reshape(k, c, -1) * s0[None, :, None]
        # linear output ordered (k, c) -> z viewed as (..., V, K, C) = (..., V*K, C)
        self.register_buffer("lin_w", w.reshape(k * c, -1).t().contiguous().detach().clone())
        self.register_buffer("lin_b", (conv.bias.reshape(k, c) * s0).reshape(-1).detach().clone())
        self.register_buffer("shift", h0.detach().clone())
        index, weight = neighbour_table(adjacency.detach())
        self.register_buffer("index", index.flatten())
        self.register_buffer("weight", weight[:, :, None].clone())
        self.depth = index.shape[0]
        s3, h3 = _bn(block.tcn[3])
        tconv = block.tcn[2]
        self.stride = tconv.stride[0]
        self.register_buffer("conv_w", (tconv.weight * s3[:, None, None, None]).detach().contiguous(
            memory_format=torch.channels_last).clone())
        self.register_buffer("conv_b", (tconv.bias * s3 + h3).detach().clone())
        self.residual_kind = block.residual_kind
        if self.residual_kind == "conv":
            r, (s, h) = block.residual[0], _bn(block.residual[1])
            self.register_buffer("res_w", (r.weight[:, :, 0, 0] * s[:, None]).t().contiguous().detach().clone())
            self.register_buffer("res_b", (r.bias * s + h).detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, V, Ci)
        b, t, v, _ = x.shape
        z = torch.addmm(self.lin_b, x.reshape(-1, x.shape[-1]), self.lin_w).view(b, t, v * self.k, self.c)
        y = (z[:, :, self.index, :].view(b, t, self.depth, v, self.c) * self.weight).sum(dim=2)
        y = F.relu(y + self.shift)
        y = F.conv2d(y.permute(0, 3, 1, 2), self.conv_w, self.conv_b, (self.stride, 1), (4, 0)).permute(0, 2, 3, 1)
        if self.residual_kind == "identity":
            y = y + x
        elif self.residual_kind == "conv":
            xs = x[:, ::self.stride]
            y = y + torch.addmm(self.res_b, xs.reshape(-1, xs.shape[-1]), self.res_w).view(y.shape)
        return F.relu(y)


class SparseStream(nn.Module):
    def __init__(self, stream: STGCN) -> None:
        super().__init__()
        v = stream.A.shape[-1]
        s, h = _bn(stream.data_bn)
        self.register_buffer("in_scale", s.reshape(v, -1).detach().clone())
        self.register_buffer("in_shift", h.reshape(v, -1).detach().clone())
        blocks = []
        for i, block in enumerate(stream.st_gcn_networks):
            a = stream.A if stream.edge_importance is None else stream.A * stream.edge_importance[i]
            blocks.append(SparseBlock(block, a))
        self.blocks = nn.ModuleList(blocks)
        self.fcn = stream.fcn
        self.dtype = torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, c, t, v, m) fp32
        n, c, t, v, m = x.shape
        y = x.permute(0, 4, 2, 3, 1).reshape(n * m, t, v, c) * self.in_scale + self.in_shift
        y = y.to(self.dtype)
        for block in self.blocks:
            y = block(y)
        y = y.float().sum(dim=(1, 2)) * (1.0 / (y.shape[1] * y.shape[2]))
        y = y.reshape(n, m, -1).sum(dim=1) * (1.0 / m) if m > 1 else y.reshape(n, -1)
        return F.linear(y, self.fcn.weight[:, :, 0, 0].float(), self.fcn.bias.float())


class SparseTwoStream(nn.Module):
    def __init__(self, model: TwoStreamSTGCN) -> None:
        super().__init__()
        self.motion = model.motion
        self.origin, self.moving = SparseStream(model.origin_stream), SparseStream(model.motion_stream)

    def half(self):
        for s in (self.origin, self.moving):
            s.blocks.half(); s.dtype = torch.float16
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.origin(x) + self.moving(motion_of(x, self.motion))
