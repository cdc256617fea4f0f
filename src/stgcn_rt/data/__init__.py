"""Data shipped with the package.

``clean_and_jerk.mp4``: a 10-second clip (340x256, 30 fps) from the public ST-GCN repository
(github.com/yysijie/st-gcn, BSD-2-Clause, Copyright (c) 2018 Sijie Yan), the demo's video.

``skeletons.npz``: MediaPipe pose keypoints (frames, 33, 3) of the two videos in the public ST-GCN
repository (github.com/yysijie/st-gcn, BSD-2-Clause, Copyright (c) 2018 Sijie Yan), extracted by
``scripts/make_real_skeletons.py``. They give tests and demos real human motion without a video
decoder or pose model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgcn_rt.window import FRAMES

SKELETONS = "skeletons.npz"
DEMO_VIDEO = "clean_and_jerk.mp4"
# the package is installed from files (setuptools, editable or not), never from a zip, so its data
# are real paths beside this module; importlib.resources.files would need Python 3.9
FOLDER = Path(__file__).resolve().parent


def demo_video() -> Path:
    """Path of the shipped demo video."""
    return FOLDER / DEMO_VIDEO


def real_skeletons() -> dict[str, np.ndarray]:
    """{video name: keypoints (frames, 33, 3) float32}."""
    with np.load(FOLDER / SKELETONS) as archive:
        return {k: archive[k].astype(np.float32) for k in archive.files if not k.endswith("__fps")}


def skeleton_windows(keypoints: np.ndarray, seq_len: int = FRAMES, stride: int = 25) -> np.ndarray:
    """Slide over (frames, V, 3) keypoints: windows (N, 3, seq_len, V, 1)."""
    starts = range(0, max(len(keypoints) - seq_len, 0) + 1, stride)
    windows = np.stack([keypoints[s:s + seq_len] for s in starts])  # (N, T, V, C)
    return np.ascontiguousarray(windows.transpose(0, 3, 1, 2)[..., None])


def real_windows(seq_len: int = FRAMES, stride: int = 25) -> np.ndarray:
    """Real windows (N, 3, seq_len, 33, 1) from every shipped video, in name order."""
    return np.concatenate([skeleton_windows(k, seq_len, stride) for _, k in sorted(real_skeletons().items())])
