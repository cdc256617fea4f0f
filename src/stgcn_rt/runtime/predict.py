"""The roadmap's ``predict_action`` and a per-camera/person ring buffer of skeleton frames."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.window import FRAMES, stack_frames

__all__ = ["ActionPrediction", "SkeletonWindow", "predict_action", "stack_frames", "to_prediction"]


@dataclass(frozen=True)
class ActionPrediction:
    label: str
    index: int
    confidence: float
    probabilities: tuple[float, ...]


def to_prediction(probabilities: np.ndarray, classes: list[str]) -> ActionPrediction:
    index = int(np.argmax(probabilities))
    return ActionPrediction(classes[index], index, float(probabilities[index]),
                            tuple(float(p) for p in probabilities))


def predict_action(buffer: Iterable[np.ndarray], classifier: Classifier, seq_len: int | None = None
                   ) -> ActionPrediction:
    """Classify a buffer of per-frame (C, V, M) keypoints: pad to the window length, softmax."""
    seq_len = seq_len or classifier.input_shape[2] or FRAMES
    window = stack_frames(buffer, seq_len)
    probabilities = classifier.predict(window[None])[0]
    return to_prediction(probabilities, classifier.classes)


class SkeletonWindow:
    """Ring buffer of the last ``seq_len`` frames; says when a window is due: every ``stride`` frames,
    once ``min_frames`` have come (default 1: from the first frames on, zero-padded, as the roadmap's
    ``predict_action``; a pipeline waits for a full window).

    >>> ring = SkeletonWindow(seq_len=150, stride=5)
    >>> due = ring.push(frame)            # frame: (C, V, M)
    >>> if due: window = ring.window()    # (C, 150, V, M), zero-padded at first
    """

    def __init__(self, seq_len: int = FRAMES, stride: int = 5, min_frames: int = 1) -> None:
        if seq_len < 1 or stride < 1:
            raise StgcnError(f"seq_len and stride must be positive, got {seq_len} and {stride}")
        if not 1 <= min_frames <= seq_len:
            raise StgcnError(f"the frames before a first window must be 1 to the window's {seq_len}, got {min_frames}")
        self.seq_len = seq_len
        self.stride = stride
        self.min_frames = min_frames
        self.frames: deque[np.ndarray] = deque(maxlen=seq_len)
        self.count = 0  # frames pushed since the start of the stream

    def push(self, frame: np.ndarray) -> bool:
        self.frames.append(np.asarray(frame, dtype=np.float32))
        self.count += 1
        return self.count % self.stride == 0 and self.count >= self.min_frames

    @property
    def first_frame(self) -> int:
        """Stream index of the oldest frame in the window."""
        return self.count - len(self.frames)

    def window(self) -> np.ndarray:
        return stack_frames(self.frames, self.seq_len)

    def reset(self) -> None:
        self.frames.clear()
        self.count = 0
