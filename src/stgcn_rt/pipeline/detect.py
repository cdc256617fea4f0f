"""Person detectors for multi-person (M=5) mode.

- ``hog`` (default): OpenCV's built-in HOG people detector. It ships inside OpenCV, so it runs
  offline with nothing to download; it is weak on crouching or partly visible people.
- ``yolo:WEIGHTS``: Ultralytics YOLO when it is installed and you give a weights file (the roadmap's
  detector); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stgcn_rt.errors import StgcnError, require


@dataclass(frozen=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


def iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    inter = max(0.0, w) * max(0.0, h)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def covered(inner: Box, outer: Box) -> float:
    """The fraction of ``inner``'s area that lies inside ``outer``."""
    w = min(inner.x2, outer.x2) - max(inner.x1, outer.x1)
    h = min(inner.y2, outer.y2) - max(inner.y1, outer.y1)
    return max(0.0, w) * max(0.0, h) / inner.area if inner.area > 0 else 0.0


def non_max_suppression(boxes: list[Box], threshold: float = 0.5) -> list[Box]:
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(iou(box, k) < threshold for k in kept):
            kept.append(box)
    return kept


class HogDetector:
    """OpenCV's default people detector, run at half resolution (about 15-45 ms a frame on one core)."""

    def __init__(self, scale: float = 0.5, hit_threshold: float = 0.5) -> None:
        self._cv2 = require("cv2", "pipeline", "Person detection")
        self._hog = self._cv2.HOGDescriptor()
        self._hog.setSVMDetector(self._cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.scale = scale
        self.hit_threshold = hit_threshold

    def __call__(self, image: np.ndarray) -> list[Box]:
        small = self._cv2.resize(image, None, fx=self.scale, fy=self.scale)
        rects, weights = self._hog.detectMultiScale(small, hitThreshold=self.hit_threshold, winStride=(4, 4),
                                                    padding=(16, 16), scale=1.05)
        boxes = [Box(x / self.scale, y / self.scale, (x + w) / self.scale, (y + h) / self.scale, float(s))
                 for (x, y, w, h), s in zip(rects, np.ravel(weights))]
        return non_max_suppression(boxes)


class YoloDetector:
    """Ultralytics YOLO, person class only, from a local weights file."""

    def __init__(self, weights: str, confidence: float = 0.4) -> None:
        if not Path(weights).exists():
            raise StgcnError(f"YOLO weights {weights} not found (stgcn-rt downloads nothing: give a local file)")
        ultralytics = require("ultralytics", "pipeline", "YOLO person detection (pip install ultralytics)")
        self._model = ultralytics.YOLO(weights)
        self.confidence = confidence

    def __call__(self, image: np.ndarray) -> list[Box]:
        result = self._model.predict(image, classes=[0], conf=self.confidence, verbose=False)[0]
        xyxy = result.boxes.xyxy.cpu().numpy()
        scores = result.boxes.conf.cpu().numpy()
        return [Box(float(x1), float(y1), float(x2), float(y2), float(s))
                for (x1, y1, x2, y2), s in zip(xyxy, scores)]


def make_detector(spec: str):  # noqa: ANN201 - a callable image -> list[Box]
    """``hog`` or ``yolo:path/to/weights.pt``."""
    if spec == "hog":
        return HogDetector()
    if spec.startswith("yolo:"):
        return YoloDetector(spec[len("yolo:"):])
    raise StgcnError(f"unknown detector '{spec}': use hog or yolo:WEIGHTS.pt")
