"""Shared fixtures: checkpoints in the public reference layout, real skeleton windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import reference_state_dict

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"


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
