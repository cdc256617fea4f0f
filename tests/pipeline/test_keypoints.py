"""stgcn-rt pose: a video's keypoints as (frames, M, 33, 3), by MediaPipe or by BlazePose in PyTorch."""

import numpy as np
import pytest
from helpers import cli_runner

from stgcn_rt.cli import cli

pytest.importorskip("cv2")
pytest.importorskip("mediapipe")


def test_both_pose_backends_write_the_classifiers_keypoints(short_clip, tmp_path):
    written = {}
    for backend in ("blazepose", "mediapipe"):
        out = tmp_path / f"{backend}.npz"
        result = cli_runner().invoke(cli, ["pose", str(short_clip), "-o", str(out), "--pose", backend])
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith(f"wrote {out}: keypoints (40, 1, 33, 3), a person in 100% of the frames")
        with np.load(out) as archive:
            assert archive["fps"] == pytest.approx(30.0) and str(archive["pose"]) == backend
            written[backend] = archive["keypoints"]
    keypoints = written["blazepose"]
    assert keypoints.dtype == np.float32 and keypoints.min() >= 0 and keypoints.max() <= 1
    visible = written["mediapipe"][..., 2] > 0.5
    apart = np.hypot(*((written["blazepose"] - written["mediapipe"])[..., :2] * [640, 480]).transpose(3, 0, 1, 2))
    assert apart[visible].mean() / 640 <= 0.01  # the same poses: MediaPipe's networks either way


def test_pose_mistakes_are_one_line(short_clip, tmp_path):
    for args, message in (
        (["pose", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "k.npz")], "video"),
        (["pose", str(short_clip), "-o", str(tmp_path / "k.npy")], "should end in .npz: the keypoints are written"),
        (["pose", str(short_clip), "-o", str(tmp_path / "k.npz"), "--pose", "mediapipe", "--precision", "fp16"],
         "error: --precision is blazepose's: MediaPipe's solution runs in its own precision on the CPU; leave "
         "--precision out or use --pose blazepose"),
    ):
        result = cli_runner().invoke(cli, args)
        assert result.exit_code == 2 and message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "k.npz").exists()
