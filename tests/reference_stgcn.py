"""An independent, functional re-statement of the public ST-GCN reference forward pass.

It reads a state dict directly and follows the reference's operations literally (einsum graph
convolution, avg_pool2d over (T, V), person mean, zeros concatenated for motion), so that the
package's module-based network is checked against something it does not share code with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCKS = [(64, 1, False), (64, 1, True), (64, 1, True), (64, 1, True), (128, 2, True),
          (128, 1, True), (128, 1, True), (256, 2, True), (256, 1, True), (256, 1, True)]


def _bn(x, sd, name):
    return F.batch_norm(x, sd[name + ".running_mean"], sd[name + ".running_var"],
                        sd[name + ".weight"], sd[name + ".bias"], False, 0.0, 1e-5)


def _conv(x, sd, name, **kw):
    return F.conv2d(x, sd[name + ".weight"], sd[name + ".bias"], **kw)


def reference_stream(sd: dict, x: torch.Tensor, prefix: str = "") -> torch.Tensor:
    N, C, T, V, M = x.size()
    A = sd[prefix + "A"]
    x = x.permute(0, 4, 3, 1, 2).contiguous().view(N * M, V * C, T)
    x = _bn(x, sd, prefix + "data_bn")
    x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)
    in_c = C
    for i, (out_c, stride, residual) in enumerate(BLOCKS):
        b = f"{prefix}st_gcn_networks.{i}."
        importance = sd.get(f"{prefix}edge_importance.{i}", 1)
        Ai = A * importance
        if not residual:
            res = 0
        elif in_c == out_c and stride == 1:
            res = x
        else:
            res = _bn(_conv(x, sd, b + "residual.0", stride=(stride, 1)), sd, b + "residual.1")
        y = _conv(x, sd, b + "gcn.conv")
        n, kc, t, v = y.size()
        y = y.view(n, Ai.size(0), kc // Ai.size(0), t, v)
        y = torch.einsum("nkctv,kvw->nctw", (y, Ai)).contiguous()
        y = F.relu(_bn(y, sd, b + "tcn.0"))
        y = _conv(y, sd, b + "tcn.2", stride=(stride, 1), padding=(4, 0))
        y = _bn(y, sd, b + "tcn.3")
        x = F.relu(y + res)
        in_c = out_c
    x = F.avg_pool2d(x, x.size()[2:])
    x = x.view(N, M, -1, 1, 1).mean(dim=1)
    x = _conv(x, sd, prefix + "fcn")
    return x.view(x.size(0), -1)


def reference_two_stream(sd: dict, x: torch.Tensor, motion: str) -> torch.Tensor:
    N, C, T, V, M = x.size()
    zeros = torch.zeros(N, C, 1, V, M)
    if motion == "central":
        m = torch.cat((zeros, x[:, :, 1:-1] - 0.5 * x[:, :, 2:] - 0.5 * x[:, :, :-2], zeros), 2)
    else:
        m = torch.cat((zeros, x[:, :, 1:] - x[:, :, :-1]), 2)
    return reference_stream(sd, x, "origin_stream.") + reference_stream(sd, m, "motion_stream.")
