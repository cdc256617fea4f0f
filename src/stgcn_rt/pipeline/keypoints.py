"""Keypoints of whole videos, for calibration and test data: the pose step run offline."""

from __future__ import annotations

import os

import numpy as np

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.pipeline.pose import PoseEstimator
from stgcn_rt.pipeline.sources import FRAME_SIZE, video_files
from stgcn_rt.window import CHANNELS, FRAMES, JOINTS


def video_keypoints(path: str | os.PathLike[str]) -> np.ndarray:
    """Single-person keypoints (frames, 33, 3) of a video; frames without a person are zeros."""
    cv2 = require("cv2", "pipeline", "Reading video")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise StgcnError(f"cannot open video {path}")
    frames = []
    with PoseEstimator() as pose:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            points = pose(cv2.resize(image, FRAME_SIZE))
            frames.append(np.zeros((JOINTS, CHANNELS), np.float32) if points is None else points)
    capture.release()
    if not frames:
        raise StgcnError(f"no frame could be read from {path}")
    return np.stack(frames)


def windows_from_videos(folder: str | os.PathLike[str], seq_len: int = FRAMES, stride: int = 25,
                        persons: int = 1) -> np.ndarray:
    """Windows (N, 3, seq_len, 33, persons) from every video in ``folder`` (extra persons are zeros)."""
    from stgcn_rt.data import skeleton_windows
    from stgcn_rt.window import fit_persons

    windows = [skeleton_windows(video_keypoints(v), seq_len, stride) for v in video_files(folder)]
    return fit_persons(np.concatenate(windows), persons)
