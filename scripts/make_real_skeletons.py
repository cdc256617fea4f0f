"""Regenerate src/stgcn_rt/data/skeletons.npz: MediaPipe keypoints of the public ST-GCN videos.

Run from the repository root with the [pipeline] extra installed:
    python scripts/make_real_skeletons.py ../shared/videos
Frames are resized to 640x480 (the contract's resolution) before pose; a frame without a person
stores zeros, as in training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from stgcn_rt.pipeline.pose import NUM_LANDMARKS, PoseEstimator

OUT = Path(__file__).resolve().parents[1] / "src" / "stgcn_rt" / "data" / "skeletons.npz"


def extract(video: Path) -> tuple[np.ndarray, float]:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    with PoseEstimator() as pose:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            points = pose(cv2.resize(frame, (640, 480)))
            frames.append(np.zeros((NUM_LANDMARKS, 3), np.float32) if points is None else points)
    capture.release()
    return np.stack(frames), fps


def main(folder: str) -> None:
    arrays = {}
    for video in sorted(Path(folder).glob("*.mp4")):
        keypoints, fps = extract(video)
        found = float((keypoints.sum(axis=(1, 2)) > 0).mean())
        print(f"{video.name}: {len(keypoints)} frames at {fps:.2f} fps, person in {found:.0%}")
        arrays[video.stem] = keypoints
        arrays[f"{video.stem}__fps"] = np.array(fps)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/videos")
