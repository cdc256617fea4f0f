"""Annotated video: skeleton, person slot, predicted label and probability drawn on each frame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.model.layouts import MEDIAPIPE33

COLOURS = [(0, 200, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 0, 255)]


def draw(image: np.ndarray, persons: np.ndarray, label: str | None, probability: float | None,
         alert: bool = False) -> np.ndarray:
    """Draw (3, V, M) normalised keypoints and the current label on a copy of ``image``."""
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
    return out


class VideoOutput:
    """An MP4 written under a temporary name and renamed into place when closed."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int] = (640, 480)) -> None:
        cv2 = require("cv2", "pipeline", "Writing video")
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise StgcnError(f"cannot write video {self.path}: OpenCV has no MP4 encoder here")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)
