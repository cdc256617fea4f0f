"""The maintainer's scripts (scripts/*.py) run and write what they say, on tiny settings."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name, *args, cwd=None):
    result = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                            cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("trained") / "trained.pt"
    out = script("train_tiny_checkpoint.py", "-o", path, "--epochs", "1", "--stride", "50")
    assert "training accuracy" in out
    return path


def test_a_tiny_trained_checkpoint_and_its_precision_report(tmp_path, trained):
    from stgcn_rt.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(trained)
    assert loaded.config.classes == ["clean_and_jerk", "skateboarding"] and not loaded.untrained
    script("measure_precision.py", trained, "--seq-len", "30", "--calib-stride", "60", "--eval-stride", "90",
           "--out", tmp_path / "report")
    report = json.loads((tmp_path / "report" / "precision-cpu.json").read_text())
    assert [(r["precision"], r["int8_target"]) for r in report["rows"]] == [
        ("fp32", None), ("fp16", None), ("int8", "tensorrt"), ("int8", "onnxruntime"),
        ("int8", "onnxruntime, BatchNorm kept")]
    assert report["rows"][0]["passed"] and report["rows"][0]["max_prob_diff"] <= 1e-4
    assert "| trained.pt | fp16 |" in (tmp_path / "report" / "precision-cpu.md").read_text()


def test_skeletons_of_a_folder_of_videos(tmp_path, videos):
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    folder = tmp_path / "videos"
    folder.mkdir()
    capture = cv2.VideoCapture(str(videos["clean_and_jerk"]))
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (340, 256))
    for _ in range(20):
        writer.write(capture.read()[1])
    writer.release()
    script("make_real_skeletons.py", folder, "--out", tmp_path / "skeletons.npz")
    with np.load(tmp_path / "skeletons.npz") as archive:
        keypoints = archive["clip"]
    assert keypoints.shape == (20, 33, 3) and keypoints.any(axis=(1, 2)).all() and keypoints.max() <= 1


def test_pose_agreement_of_blazepose_and_mediapipe_on_a_real_clip(tmp_path, trained):
    pytest.importorskip("mediapipe")
    pytest.importorskip("tflite")
    from stgcn_rt.data import demo_video

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").symlink_to(demo_video())
    script("measure_pose_agreement.py", trained, "--videos", videos, "--stride", "50", "--noise-seeds", "1",
           "--out", tmp_path)
    report = json.loads((tmp_path / "pose-agreement-cpu.json").read_text())
    (row,) = report["rows"]
    assert (row["video"], row["frames"], row["windows"]) == ("clip.mp4", 300, 4)
    assert row["same_frames"] == row["both_found"] == 300 and row["mean"] < 0.01 and row["p95"] < 0.025
    assert row["same_top1"] == 4  # a trained checkpoint: the same class from either backend's windows
    # MediaPipe against itself on frames a grey level apart in 0.1% of their pixels: moved, by far less than a pixel
    (noise,) = report["noise"]
    itself, pair = noise["mediapipe_vs_itself"], noise["blazepose_vs_mediapipe"]
    assert noise["seed"] == 1 and itself["frames"] == pair["frames"] == 300
    assert 0 < itself["mean"] < 1 / 640 and pair["mean"] < 0.01 and pair["same_top1"] == 4
    text = (tmp_path / "pose-agreement-cpu.md").read_text()
    assert "| clip.mp4 | 300 | 100.0% |" in text and "| 1 | 100.0% |" in text
