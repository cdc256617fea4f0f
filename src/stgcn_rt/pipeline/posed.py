"""What a pose stage gives the pipeline: a step's poses at once, whatever the backend.

A stage poses frames in steps: BlazePose one frame of every camera that has one waiting, MediaPipe's
workers one frame each. It answers each step once, on its own thread, with the jobs the step's frames
were submitted with and a :class:`PosedStep`, so that the pipeline handles a step's frames together:
a future a frame, settled, called back and looked at one by one, took the pipeline's interpreter
about 30 us a frame (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Protocol

import numpy as np

from stgcn_rt.window import CHANNELS, JOINTS


def persons_found(keypoints: np.ndarray) -> np.ndarray:
    """The slots holding someone in person slots (..., M, 33, 3): one count per pose."""
    return keypoints.any(axis=(-2, -1)).sum(axis=-1)


@dataclass
class PosedStep:
    """One step's poses for all of its frames: their person slots (frames, M, 33, 3) in [0, 1] (all
    zero where nobody was found, and for every frame of a step that failed), how long the step took
    (each of its frames waited for all of it) and a failed step's error. ``found``: the persons found
    in each frame, counted where the step was posed (in BlazePose's or MediaPipe's process, not in
    the pipeline's loop)."""

    keypoints: np.ndarray
    milliseconds: float
    error: str | None = None

    def __post_init__(self) -> None:
        self.found: np.ndarray = persons_found(self.keypoints)

    @classmethod
    def failed(cls, frames: int, persons: int, error: str, milliseconds: float = 0.0) -> PosedStep:
        """A step of ``frames`` frames that could not be posed: nobody in them, and why."""
        return cls(np.zeros((frames, persons, JOINTS, CHANNELS), np.float32), milliseconds, error)


#: how a stage answers a step: the jobs its frames were submitted with, in the order of its keypoints
Answer = Callable[[List[Any], PosedStep], None]


class PoseStage(Protocol):
    """What the pipeline poses its frames with, made with an :data:`Answer` it calls once a step.
    Each camera's frames are posed, and answered, in the order submitted; a step holds at most one
    frame of a camera."""

    def submit(self, camera: str, image: np.ndarray, job: Any) -> None:
        """``camera``'s next frame, answered with ``job``."""

    def flush(self) -> None:
        """Send what was submitted since the last flush, where a stage sends frames together."""

    def close(self) -> list[Any]:
        """Finish the steps under way; the jobs of the frames not yet posed, which are never answered."""
