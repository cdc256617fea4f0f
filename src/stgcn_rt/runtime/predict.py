"""The roadmap's ``predict_action`` and a per-camera/person ring buffer of skeleton frames."""

from __future__ import annotations

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
        self.count = 0  # frames pushed since the start of the stream
        # every frame is written twice, seq_len apart, so that the last seq_len frames are always one
        # slice (a window is one copy, not a stack of 150 arrays: a pipeline of hundreds of cameras
        # takes a window a frame); allocated at the first push, when the frames' shape is known
        self._frames: np.ndarray | None = None

    def push(self, frame: np.ndarray) -> bool:
        """Add a frame (C, V, M); True when a window is due."""
        frame = np.asarray(frame, dtype=np.float32)  # no copy of a float32 array (or view)
        if self._frames is None:
            if frame.ndim != 3:
                raise StgcnError(f"frames must be (C, V, M) arrays, got shape {frame.shape}")
            self._frames = np.zeros((frame.shape[0], 2 * self.seq_len, *frame.shape[1:]), np.float32)
        elif frame.shape != (self._frames.shape[0], *self._frames.shape[2:]):
            raise StgcnError(f"frames must all be (C, V, M) arrays of one shape: got {frame.shape} after "
                             f"{(self._frames.shape[0], *self._frames.shape[2:])}")
        at = self.count % self.seq_len
        self._frames[:, at] = frame
        self._frames[:, at + self.seq_len] = frame
        self.count += 1
        return self.count % self.stride == 0 and self.count >= self.min_frames

    @property
    def first_frame(self) -> int:
        """Stream index of the oldest frame in the window."""
        return max(0, self.count - self.seq_len)

    def window(self) -> np.ndarray:
        """The last ``seq_len`` frames (C, seq_len, V, M), oldest first, followed by all-zero frames
        while fewer have come."""
        if self._frames is None:
            raise StgcnError("the frame buffer is empty: push at least one (C, V, M) frame")
        start = self.count % self.seq_len if self.count >= self.seq_len else 0
        return self._frames[:, start:start + self.seq_len].copy()

    def reset(self) -> None:
        self._frames = None
        self.count = 0
