"""MediaPipe's landmark smoothing (v0.10.21's PoseLandmarkFiltering), vectorised over landmarks: a
One-Euro filter on each coordinate, in pixels scaled by the object's size, and a low-pass filter on
each visibility. A frame without landmarks resets them, as MediaPipe's calculators do.
"""

from __future__ import annotations

import math

import numpy as np

#: MediaPipe's Python solutions stamp frame k at k x 33,333 µs (a simulated 30 fps), whatever the video's rate
FRAME_MICROSECONDS = 33333
VISIBILITY_ALPHA = 0.1
#: (min_cutoff, beta, derivate_cutoff) of the 33 landmarks and of the two auxiliary ones (the next ROI's)
LANDMARK_FILTER = (0.05, 80.0, 1.0)
AUXILIARY_FILTER = (0.01, 10.0, 1.0)


class LowPass:
    """Exponential smoothing of an array; the first value passes as it is."""

    def __init__(self) -> None:
        self.raw: np.ndarray | None = None
        self.stored: np.ndarray | None = None

    def apply(self, value: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
        result = value if self.stored is None else alpha * value + (1.0 - alpha) * self.stored
        self.raw, self.stored = value, result
        return result


class OneEuro:
    """The One-Euro filter as MediaPipe writes it (util/filtering/one_euro_filter.cc), on arrays.

    ``apply`` takes the frame's timestamp (µs) and the value's scale (1 / the object's size), with
    which the derivative is measured, so that the cut-off follows the object's speed in its own sizes.
    """

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float, frequency: float = 30.0) -> None:
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.frequency = frequency
        self.x, self.dx = LowPass(), LowPass()
        self.last_time = -1  # MediaPipe's uninitialised timestamp: the first interval is measured from -1 ns

    def alpha(self, cutoff: float | np.ndarray) -> float | np.ndarray:
        te, tau = 1.0 / self.frequency, 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def apply(self, microseconds: int, value_scale: float, value: np.ndarray) -> np.ndarray:
        nanoseconds = microseconds * 1000
        if self.last_time >= nanoseconds:
            return value
        if self.last_time != 0 and nanoseconds != 0:
            self.frequency = 1.0 / ((nanoseconds - self.last_time) * 1e-9)
        self.last_time = nanoseconds
        dvalue = (value - self.x.raw) * value_scale * self.frequency if self.x.raw is not None else np.zeros_like(value)
        edvalue = self.dx.apply(dvalue, self.alpha(self.derivate_cutoff))
        cutoff = self.min_cutoff + self.beta * np.abs(edvalue)
        return self.x.apply(value, self.alpha(cutoff))


class LandmarkSmoother:
    """One set of landmarks (N, 4: x, y, z normalised, visibility) through MediaPipe's visibility
    low-pass and coordinate One-Euro filters; ``reset`` where a frame has none."""

    def __init__(self, parameters: tuple[float, float, float]) -> None:
        self.parameters = parameters
        self.reset()

    def reset(self) -> None:
        self.coordinates = OneEuro(*self.parameters)
        self.visibility = LowPass()

    def apply(self, landmarks: np.ndarray, microseconds: int, width: int, height: int,
              object_scale: float) -> np.ndarray:
        """``object_scale``: the object's size in pixels (MediaPipe's OBJECT_SCALE_ROI)."""
        out = landmarks.astype(np.float64)
        out[:, 3] = self.visibility.apply(out[:, 3], VISIBILITY_ALPHA)
        if object_scale < 1e-6:  # min_allowed_object_scale: too small to smooth
            return out.astype(np.float32)
        pixels = out[:, :3] * np.array([width, height, width])
        pixels = self.coordinates.apply(microseconds, 1.0 / object_scale, pixels)
        out[:, :3] = pixels / np.array([width, height, width])
        return out.astype(np.float32)
