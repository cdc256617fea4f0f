"""Regenerate src/stgcn_rt/data/skeletons.npz: MediaPipe keypoints of the public ST-GCN videos.

Run from the repository root with the [pipeline] extra installed:
    python scripts/make_real_skeletons.py ../shared/videos [--out FILE]
Frames are resized to 640x480 (the contract's resolution) before pose; a frame without a person
stores zeros, as in training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stgcn_rt.files import atomic_output
from stgcn_rt.pipeline.keypoints import video_keypoints

OUT = Path(__file__).resolve().parents[1] / "src" / "stgcn_rt" / "data" / "skeletons.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="../shared/videos", help="folder of .mp4 videos")
    parser.add_argument("--out", type=Path, default=OUT, help="the .npz to write")
    args = parser.parse_args()
    arrays = {}
    for video in sorted(Path(args.folder).glob("*.mp4")):
        keypoints = video_keypoints(video)[:, 0]  # one person
        found = float((keypoints.sum(axis=(1, 2)) > 0).mean())
        print(f"{video.name}: {len(keypoints)} frames, person in {found:.0%}")
        arrays[video.stem] = keypoints
    with atomic_output(args.out) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
