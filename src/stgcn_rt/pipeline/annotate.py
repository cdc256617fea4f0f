"""Annotated video: skeleton, person slot, predicted label and probability drawn on each frame."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.model.layouts import MEDIAPIPE33

COLOURS = [(0, 200, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 0, 255)]


def draw(image: np.ndarray, persons: np.ndarray, label: str | None, probability: float | None,
         alert: bool = False, untrained: bool = False) -> np.ndarray:
    """Draw (3, V, M) normalised keypoints and the current label on a copy of ``image``; an
    ``untrained`` model's label is marked as meaningless."""
    cv2 = require("cv2", "pipeline", "Drawing annotations")
    out = image.copy()
    height, width = out.shape[:2]
    for slot in range(persons.shape[2]):
        points = persons[:, :, slot]
        if not points.any():
            continue
        colour = COLOURS[slot % len(COLOURS)]
        xy = np.stack([points[0] * width, points[1] * height], axis=1).astype(int)
        visible = points[2] > 0.3
        for i, j in MEDIAPIPE33.edges:
            if visible[i] and visible[j]:
                cv2.line(out, tuple(xy[i]), tuple(xy[j]), colour, 2)
        for k in np.flatnonzero(visible):
            cv2.circle(out, tuple(xy[k]), 3, colour, -1)
        if persons.shape[2] > 1:
            cv2.putText(out, f"#{slot}", tuple(xy[0] - [10, 15]), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    if label is not None:
        text = f"{label} {probability:.2f}"
        colour = (0, 0, 255) if alert else (255, 255, 255)
        cv2.rectangle(out, (0, 0), (24 + 14 * len(text), 36), (0, 0, 0), -1)
        cv2.putText(out, text, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2)
    if untrained:
        note = "UNTRAINED MODEL: labels mean nothing"
        cv2.rectangle(out, (0, height - 30), (14 + 11 * len(note), height), (0, 0, 0), -1)
        cv2.putText(out, note, (8, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
    return out


#: how annotated video is written, best first: H.264 (browsers play it) through PyAV's libx264 or an
#: OpenCV built with an H.264 encoder, else MPEG-4 Part 2 (mp4v), which every OpenCV writes
CODECS = ("pyav-h264", "opencv-h264", "opencv-mp4v")
MP4V_NOTE = ("annotated video is MPEG-4 Part 2 (mp4v), which browsers do not play: pip install av "
             "(PyAV, with H.264) to write H.264")


class VideoOutput:
    """An MP4 written under a temporary name and renamed into place when closed; its folder is made
    when the first video is written. ``codec``: which of :data:`CODECS` writes it."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int] = (640, 480)) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.frames = 0
        for codec in CODECS:
            self.codec = codec
            self._writer = _open_writer(codec, self._tmp, fps, size)
            if self._writer is not None:
                return
        raise StgcnError(f"cannot write video {self.path}: OpenCV has no MP4 encoder here")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)


class _PyAVWriter:
    """H.264 through PyAV's libx264, yuv420p and fast start, as browsers play it."""

    def __init__(self, av: Any, path: Path, fps: float, size: tuple[int, int]) -> None:
        self._av = av
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "23"}  # the pipeline's cores do pose

    def write(self, image: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        self._container.mux(self._stream.encode(frame))

    def release(self) -> None:
        self._container.mux(self._stream.encode())
        self._container.close()


def _open_writer(codec: str, path: Path, fps: float, size: tuple[int, int]) -> Any:
    """A writer of ``codec`` at ``path``, or None where this machine has none."""
    if codec == "pyav-h264":
        try:
            import av
        except ImportError:
            return None
        try:
            return _PyAVWriter(av, path, fps, size)
        except Exception:  # PyAV's own errors (their names vary by version): one built without libx264
            path.unlink(missing_ok=True)
            return None
    cv2 = require("cv2", "pipeline", "Writing video")
    fourcc = "avc1" if codec == "opencv-h264" else "mp4v"
    quiet = hasattr(cv2, "setLogLevel")  # a missing encoder is not an error here: OpenCV's log kept silent
    level = cv2.getLogLevel() if quiet else None
    if quiet:
        cv2.setLogLevel(0)
    try:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    finally:
        if quiet:
            cv2.setLogLevel(level)
    if writer.isOpened():
        return writer
    writer.release()
    path.unlink(missing_ok=True)
    return None
