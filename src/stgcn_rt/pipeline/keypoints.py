"""Keypoints of whole videos, for training data, calibration and checks: the pose step run offline,
by MediaPipe's own solution or by BlazePose in PyTorch (:mod:`stgcn_rt.pose`)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.pipeline.pose_stage import blazepose, check_pose, person_slots
from stgcn_rt.pipeline.sources import FRAME_SIZE, video_files, video_frames
from stgcn_rt.window import FRAMES


def video_properties(path: str | os.PathLike[str]) -> tuple[int, float]:
    """A video's frame count (0 where its container does not say) and frame rate (25 where it does not)."""
    cv2 = require("cv2", "pipeline", "Reading video")
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), float(capture.get(cv2.CAP_PROP_FPS) or 25.0)
    finally:
        capture.release()


def save_keypoints(output: str | os.PathLike[str], keypoints: np.ndarray, fps: float, pose: str) -> None:
    """Write ``keypoints`` (frames, M, 33, 3) with their frame rate and pose backend, atomically."""
    from stgcn_rt.files import atomic_output

    with atomic_output(output) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, keypoints=keypoints, fps=np.float32(fps), pose=np.array(pose))


def frame_poser(pose: str, persons: int = 1, device: str = "cpu", precision: str = "fp32",
                models: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """One video's pose step: a BGR frame in, its keypoints (persons, 33, 3) out (x, y in [0, 1] of the
    frame, visibility; absent persons all zero). ``models``: blazepose's exported networks (a folder)."""
    check_pose(pose)
    if pose == "blazepose":
        model = blazepose(device, precision, persons, models)
        return lambda image: person_slots(model.process_persons({"video": image})["video"])
    # MediaPipe as the pipeline's workers run it: the main person, and for M > 1 the detector's others
    from stgcn_rt.pipeline.pose_pool import CameraPose
    from stgcn_rt.quiet import native_stderr_hidden

    with native_stderr_hidden():
        camera = CameraPose(persons, "hog")

    def mediapipe(image: np.ndarray) -> np.ndarray:
        with native_stderr_hidden():  # MediaPipe's C++ log lines, which its first frames write
            return camera(image)[0]

    return mediapipe


def video_keypoints(path: str | os.PathLike[str], persons: int = 1, pose: str = "mediapipe", device: str = "cpu",
                    precision: str = "fp32", progress: Callable[[int], None] | None = None,
                    models: str | None = None) -> np.ndarray:
    """Keypoints (frames, persons, 33, 3) of a video, frames resized to the contract's 640x480;
    frames without a person are zeros. ``progress`` gets each frame's index once it is done."""
    cv2 = require("cv2", "pipeline", "Reading video")
    images = video_frames(path)  # a video that cannot be opened says so before the pose models load
    poser = frame_poser(pose, persons, device, precision, models)
    frames = []
    for image in images:
        frames.append(poser(cv2.resize(image, FRAME_SIZE)))
        if progress is not None:
            progress(len(frames) - 1)
    if not frames:
        raise StgcnError(f"no frame could be read from {path}")
    return np.stack(frames)


def windows_from_videos(folder: str | os.PathLike[str], seq_len: int = FRAMES, stride: int = 25,
                        persons: int = 1) -> np.ndarray:
    """Windows (N, 3, seq_len, 33, persons) from every video in ``folder`` (extra persons are zeros)."""
    from stgcn_rt.data import skeleton_windows
    from stgcn_rt.window import fit_persons

    windows = [skeleton_windows(video_keypoints(v)[:, 0], seq_len, stride) for v in video_files(folder)]
    return fit_persons(np.concatenate(windows), persons)
