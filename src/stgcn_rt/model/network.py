"""ST-GCN and two-stream ST-GCN, state-dict compatible with the public reference.

Parameter and buffer names follow the reference (``A``, ``data_bn``,
``st_gcn_networks.{i}.gcn.conv``, ``.tcn.{0,2,3}``, ``.residual.{0,1}``, ``edge_importance.{i}``,
``fcn``), so reference checkpoints load strictly. The computation is the reference's, written
with operators that ONNX and TensorRT handle well: the graph convolution's einsum is one MatMul
over the K x V partition axis and pooling is a sum and a scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from stgcn_rt.window import CHANNELS, FRAMES

Motion = Literal["forward", "central"]
MOTIONS: tuple[str, ...] = ("forward", "central")

#: (out channels, temporal stride, residual) of the ten blocks; the first takes the input's channels.
BLOCKS: tuple[tuple[int, int, bool], ...] = (
    (64, 1, False), (64, 1, True), (64, 1, True), (64, 1, True), (128, 2, True),
    (128, 1, True), (128, 1, True), (256, 2, True), (256, 1, True), (256, 1, True),
)
TEMPORAL_KERNEL = 9


def residual_kind(in_channels: int, out_channels: int, stride: int, residual: bool) -> str:
    """A block's residual: "none", "identity" (same channels and frames) or "conv" (a strided 1x1 convolution)."""
    return "none" if not residual else "identity" if in_channels == out_channels and stride == 1 else "conv"


@dataclass(frozen=True)
class BlockShape:
    """One block of :data:`BLOCKS` for a given input: channels, frames and residual kind."""

    in_channels: int
    out_channels: int
    stride: int
    residual: str
    frames: int  # input frames; the temporal convolution's output has out_frames

    @property
    def out_frames(self) -> int:
        return (self.frames - 1) // self.stride + 1


def block_shapes(in_channels: int = CHANNELS, frames: int = FRAMES) -> list[BlockShape]:
    """The ten blocks' shapes for windows of ``in_channels`` channels and ``frames`` frames."""
    shapes = []
    for out_channels, stride, residual in BLOCKS:
        shapes.append(BlockShape(in_channels, out_channels, stride,
                                 residual_kind(in_channels, out_channels, stride, residual), frames))
        in_channels, frames = out_channels, shapes[-1].out_frames
    return shapes


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network; stored in checkpoints and ONNX metadata."""

    num_classes: int = 2
    in_channels: int = 3
    num_joints: int = 33
    partitions: int = 3
    edge_importance: bool = True
    two_stream: bool = True
    motion: str = "forward"
    layout: str = "mediapipe33"
    center: int | None = None
    classes: list[str] = field(default_factory=lambda: ["normal", "shoplifting"])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class GraphConv(nn.Module):
    """The reference's ConvTemporalGraphical with t_kernel_size=1: conv to K*C', then mix joints."""

    def __init__(self, in_channels: int, out_channels: int, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions
        self.conv = nn.Conv2d(in_channels, out_channels * partitions, kernel_size=1)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        n, kc, t, v = x.shape
        k = self.partitions
        # einsum('nkctv,kvw->nctw') as one MatMul: (n, c, t, k*v) @ (k*v, w)
        x = x.reshape(n, k, kc // k, t, v).permute(0, 2, 3, 1, 4).reshape(n, kc // k, t, k * v)
        return torch.matmul(x, adjacency.reshape(k * v, -1))


class STGCNBlock(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, partitions: int, stride: int, residual: bool,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        padding = ((TEMPORAL_KERNEL - 1) // 2, 0)
        self.gcn = GraphConv(in_channels, out_channels, partitions)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1), padding),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout, inplace=True),
        )
        self.residual_kind = residual_kind(in_channels, out_channels, stride, residual)
        if self.residual_kind == "conv":
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )

    # typed views of the reference's positional layers (tcn.0, tcn.2, tcn.3, residual.0, residual.1)
    @property
    def gcn_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm after the graph convolution."""
        return cast(nn.BatchNorm2d, self.tcn[0])

    @property
    def temporal_conv(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self.tcn[2])

    @property
    def temporal_bn(self) -> nn.BatchNorm2d:
        return cast(nn.BatchNorm2d, self.tcn[3])

    @property
    def stride(self) -> int:
        return int(self.temporal_conv.stride[0])

    @property
    def residual_conv(self) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
        """The strided 1x1 convolution and its BatchNorm of a ``conv`` residual."""
        return cast(nn.Conv2d, self.residual[0]), cast(nn.BatchNorm2d, self.residual[1])

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x, adjacency))
        if self.residual_kind == "identity":
            out = out + x
        elif self.residual_kind == "conv":
            out = out + self.residual(x)
        return F.relu(out)


class STGCN(nn.Module):
    """One ST-GCN stream: (N, C, T, V, M) skeletons -> (N, classes) logits."""

    A: torch.Tensor
    edge_importance: nn.ParameterList | None

    def __init__(self, config: ModelConfig, adjacency: torch.Tensor, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("A", adjacency.to(torch.float32).clone())
        partitions, joints = adjacency.shape[0], adjacency.shape[-1]
        self.data_bn = nn.BatchNorm1d(config.in_channels * joints)
        shapes = block_shapes(config.in_channels)
        blocks = [STGCNBlock(s.in_channels, s.out_channels, partitions, s.stride, s.residual != "none", dropout)
                  for s in shapes]
        self.st_gcn_networks = nn.ModuleList(blocks)
        if config.edge_importance:
            self.edge_importance = nn.ParameterList(
                [nn.Parameter(torch.ones_like(self.A)) for _ in blocks]
            )
        else:
            self.edge_importance = None
        self.fcn = nn.Conv2d(shapes[-1].out_channels, config.num_classes, kernel_size=1)
        self.block_dtype = torch.float32

    @property
    def blocks(self) -> list[STGCNBlock]:
        return cast("list[STGCNBlock]", list(self.st_gcn_networks))

    def adjacency(self, block: int) -> torch.Tensor:
        """Block ``block``'s (K, V, V) adjacency: A, times its learned edge importance if any."""
        return self.A if self.edge_importance is None else self.A * self.edge_importance[block]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        # data_bn normalises each (joint, channel) pair, shared by all persons: (N*M, V*C, T)
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        mixed = self.block_dtype != torch.float32
        if mixed:
            x = x.to(self.block_dtype)
        for i, block in enumerate(self.st_gcn_networks):
            adjacency = self.adjacency(i)
            x = block(x, adjacency.to(x.dtype) if mixed else adjacency)
        if mixed:
            x = x.float()
        # Average over (T, V), then over persons. Sums and a scale rather than mean(): ReduceSum
        # has the same form in opsets 13-18, so the export converts cleanly to opset 17, which
        # TensorRT 8.5/8.6 on JetPack 5 parse.
        x = x.sum(dim=(2, 3)) * (1.0 / (x.shape[2] * x.shape[3]))
        x = x.reshape(n, m, -1).sum(dim=1) * (1.0 / m) if m > 1 else x.reshape(n, -1)
        x = self.fcn(x[:, :, None, None])
        return x.flatten(1)


def motion_of(x: torch.Tensor, motion: str) -> torch.Tensor:
    """Temporal differences fed to the motion stream, zero where a neighbour frame is missing.

    ``forward``: x[t] - x[t-1], zero at t=0 (the roadmap's training code).
    ``central``: x[t] - 0.5 x[t+1] - 0.5 x[t-1], zero at both ends (the reference two-stream model).
    """
    # Concatenating zeros (not Pad) keeps the export convertible to opset 17.
    zero = torch.zeros_like(x[:, :, :1])
    if motion == "forward":
        return torch.cat((zero, x[:, :, 1:] - x[:, :, :-1]), dim=2)
    if motion == "central":
        diff = x[:, :, 1:-1] - 0.5 * x[:, :, 2:] - 0.5 * x[:, :, :-2]
        return torch.cat((zero, diff, zero), dim=2)
    raise ValueError(f"unknown motion '{motion}': choose one of {', '.join(MOTIONS)}")


class TwoStreamSTGCN(nn.Module):
    """origin_stream(x) + motion_stream(motion(x))."""

    def __init__(self, config: ModelConfig, adjacency: torch.Tensor, dropout: float = 0.0) -> None:
        super().__init__()
        self.motion = config.motion
        self.origin_stream = STGCN(config, adjacency, dropout)
        self.motion_stream = STGCN(config, adjacency, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.origin_stream(x) + self.motion_stream(motion_of(x, self.motion))


def set_block_precision(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Run the ten ST-GCN blocks in ``dtype`` (e.g. fp16) and keep the rest in fp32, in place.

    Input normalisation (data_bn), the motion differences, pooling over T x V and the classifier
    stay fp32: they see the raw [0, 1] keypoints or sum over ~1,250 positions, where fp16 loses
    accuracy or range (the roadmap's "accuracy degradation" item).
    """
    for stream in model.modules():
        if isinstance(stream, STGCN):
            stream.st_gcn_networks.to(dtype)
            stream.block_dtype = dtype
    return model


def build_model(config: ModelConfig, adjacency: torch.Tensor, dropout: float = 0.0) -> nn.Module:
    cls = TwoStreamSTGCN if config.two_stream else STGCN
    return cls(config, adjacency, dropout)
