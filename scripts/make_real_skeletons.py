"""Regenerate src/stgcn_rt/data/skeletons.npz: MediaPipe keypoints of the public ST-GCN videos.

Run from the repository root with the [pipeline] extra installed:
    python scripts/make_real_skeletons.py ../shared/videos
Frames are resized to 640x480 (the contract's resolution) before pose; a frame without a person
stores zeros, as in training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from stgcn_rt.pipeline.keypoints import video_keypoints

OUT = Path(__file__).resolve().parents[1] / "src" / "stgcn_rt" / "data" / "skeletons.npz"


def main(folder: str) -> None:
    arrays = {}
    for video in sorted(Path(folder).glob("*.mp4")):
        keypoints = video_keypoints(video)
        found = float((keypoints.sum(axis=(1, 2)) > 0).mean())
        print(f"{video.name}: {len(keypoints)} frames, person in {found:.0%}")
        arrays[video.stem] = keypoints
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/videos")
