"""Shared fixtures: checkpoints in the public reference layout, real skeleton windows."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import reference_state_dict

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos"

if not torch.cuda.is_available():
    # Without a GPU the Triton-kernel tests run in Triton's interpreter, which is chosen when triton is
    # first imported: set here, before any test module (or torch's FLOP counter) can import it.
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(autouse=True)
def same_random_numbers_in_any_order():
    """Every test draws the same random numbers (torch's and numpy's global generators) whatever ran
    before it, so that a test's inputs do not depend on which tests were selected or how they were
    spread over processes."""
    torch.manual_seed(0)
    np.random.seed(0)


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


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory):
    """The demo checkpoint and its dynamic-batch ONNX export."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint

    folder = tmp_path_factory.mktemp("demo")
    ckpt = make_demo_checkpoint(folder / "demo.pt")
    onnx_path, _ = export_onnx(load_checkpoint(ckpt), folder / "demo.onnx",
                               ExportOptions(dynamic_batch=True), validate=False)
    return ckpt, onnx_path


@pytest.fixture(scope="session")
def short_windows_model(demo_models, tmp_path_factory):
    """The demo checkpoint exported for 30-frame windows: the real network and ONNX Runtime, at a fifth
    of the cost of 150 frames."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint

    ckpt, _ = demo_models
    path, _ = export_onnx(load_checkpoint(ckpt), tmp_path_factory.mktemp("short") / "t30.onnx",
                          ExportOptions(seq_len=30, dynamic_batch=True), validate=False)
    return path


@pytest.fixture(scope="session")
def videos() -> dict[str, Path]:
    """The real videos with people in ../shared/videos (public ST-GCN repository, BSD-2-Clause)."""
    found = {p.stem: p for p in sorted(VIDEOS.glob("*.mp4"))}
    if not found:
        pytest.skip(f"no videos in {VIDEOS}")
    return found


@pytest.fixture(scope="session")
def short_clip(videos, tmp_path_factory):
    """The first 40 frames of clean_and_jerk.mp4 (a person in each), 640x480, 30 fps."""
    cv2 = pytest.importorskip("cv2")
    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    capture = cv2.VideoCapture(str(videos["clean_and_jerk"]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for _ in range(40):
        ok, image = capture.read()
        writer.write(cv2.resize(image, (640, 480)))
    writer.release()
    return path


@pytest.fixture(scope="session")
def clip_frames(short_clip):
    """The short clip's 40 frames (BGR, 640x480)."""
    from stgcn_rt.pipeline.sources import video_frames

    return list(video_frames(short_clip))


@pytest.fixture(scope="session")
def pose_onnx(tmp_path_factory):
    """BlazePose's two networks as validated ONNX files with a dynamic batch (stgcn-rt export-pose)."""
    pytest.importorskip("tflite")
    pytest.importorskip("cv2")
    pytest.importorskip("onnx")
    from stgcn_rt.pose.export import export_pose

    return export_pose(tmp_path_factory.mktemp("pose"))
