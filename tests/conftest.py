"""Shared fixtures: checkpoints in the public reference layout, real skeleton windows."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from stgcn_rt.model.graph import spatial_adjacency  # noqa: E402
from stgcn_rt.model.layouts import get_layout  # noqa: E402
from stgcn_rt.model.network import ModelConfig, build_model  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"


def reference_state_dict(layout: str = "mediapipe33", two_stream: bool = True, num_classes: int = 2,
                         center: int | None = None, edge_importance: bool = True, seed: int = 0
                         ) -> dict[str, torch.Tensor]:
    """A state dict with the reference's keys and random values everywhere (BN statistics too),
    so that any mistake in channel order or key mapping shows in the outputs."""
    lay = get_layout(layout)
    config = ModelConfig(num_classes=num_classes, num_joints=lay.num_joints, two_stream=two_stream,
                         edge_importance=edge_importance, layout=layout)
    adjacency = torch.tensor(spatial_adjacency(lay, center), dtype=torch.float32)
    model = build_model(config, adjacency)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("A"):
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith("num_batches_tracked"):
            state[key] = value.clone()
        elif key.endswith("weight") and value.ndim == 1:  # BatchNorm scale
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif "edge_importance" in key:
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        else:
            fan_in = value[0].numel() if value.ndim > 1 else 1
            state[key] = torch.randn(value.shape, generator=generator) / fan_in ** 0.5
    return state


@pytest.fixture
def reference_checkpoint(tmp_path):
    """Factory: write a reference-layout checkpoint and return its path."""

    def make(name: str = "ckpt.pt", wrap: str | None = None, module_prefix: bool = False, **kwargs) -> Path:
        state = reference_state_dict(**kwargs)
        if module_prefix:
            state = {f"module.{k}": v for k, v in state.items()}
        payload: object = state
        if wrap == "state_dict":
            payload = {"state_dict": state, "epoch": 60}
        elif wrap == "nested":
            payload = {"model": {"state_dict": state}, "optimizer": {"lr": torch.tensor(0.1)}}
        elif wrap == "net":
            payload = {"net": state}
        path = tmp_path / name
        torch.save(payload, path)
        return path

    return make


@pytest.fixture(scope="session")
def real_windows() -> np.ndarray:
    """Real keypoint windows (N, 3, 150, 33, 1) from MediaPipe on the public ST-GCN videos."""
    from stgcn_rt.data import real_windows as load

    return load()
