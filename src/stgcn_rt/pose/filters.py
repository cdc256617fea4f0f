"""MediaPipe's landmark smoothing (v0.10.21's PoseLandmarkFiltering) for many tracks at once: a
One-Euro filter on each coordinate, in pixels scaled by the object's size, and a low-pass filter on
each visibility. A frame without landmarks starts a track's coordinate filters over and leaves its
visibility filters as they were, as MediaPipe's graph runs its calculators: the coordinates' smoothing
takes the image size too, which every frame has, so it runs on a frame without landmarks and resets;
the visibilities' takes the landmarks alone, so it does not run then and keeps its state (on a real
video, after a person is found again, MediaPipe's visibilities differ from freshly started ones by up
to 0.68, that difference shrinking by 0.9 a frame: its low-pass's 1 - alpha).

The state of every track (a camera's person) lives in arrays, one row per track, so that a step
smooths all of its cameras in a few array operations rather than a loop over cameras.
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
MIN_OBJECT_SCALE = 1e-6  # min_allowed_object_scale: an object this small is not smoothed
_FIRST_FREQUENCY = 30.0


def smoothing_alpha(cutoff: float | np.ndarray, frequency: float | np.ndarray) -> float | np.ndarray:
    """The exponential smoothing factor of a low-pass filter with ``cutoff`` Hz at ``frequency`` Hz."""
    te, tau = 1.0 / frequency, 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / te)


class LandmarkFilters:
    """Landmarks (L, 4: x, y, z normalised, visibility) of any number of tracks through MediaPipe's
    visibility low-pass and coordinate One-Euro filters (util/filtering/one_euro_filter.cc), each
    landmark with its own (min_cutoff, beta, derivate_cutoff). Tracks are rows, added as needed."""

    def __init__(self, parameters: np.ndarray) -> None:
        self.parameters = np.asarray(parameters, np.float64)  # (L, 3)
        landmarks = len(self.parameters)
        # each parameter for every coordinate, (L, 3) contiguous: numpy runs an operation with it
        # over a track's L x 3 values in one inner loop (broadcast along the last axis alone, it
        # runs one of 3 values per landmark: several times slower at 256 tracks)
        self._min_cutoff, self._beta, self._derivate_cutoff = (
            np.repeat(self.parameters[:, k, None], 3, axis=1) for k in range(3))
        self.last_time = np.zeros(0, np.int64)  # ns; -1 when reset, MediaPipe's uninitialised stamp
        self.frequency = np.zeros(0)
        self.started = np.zeros(0, bool)  # a first value went through (the low-passes hold one)
        self.value = np.zeros((0, landmarks, 3))  # the last raw coordinates (pixels) ...
        self.smoothed = np.zeros((0, landmarks, 3))  # ... and smoothed ones
        self.derivative = np.zeros((0, landmarks, 3))  # the smoothed derivative
        self.visibility = np.zeros((0, landmarks))
        self.seen = np.zeros(0, bool)  # a visibility went through

    def add(self, count: int = 1) -> np.ndarray:
        """``count`` new tracks; their row numbers."""
        rows = np.arange(len(self.last_time), len(self.last_time) + count)
        grow = {"last_time": -1, "frequency": _FIRST_FREQUENCY, "started": False, "value": 0.0,
                "smoothed": 0.0, "derivative": 0.0, "visibility": 0.0, "seen": False}
        for name, fill in grow.items():
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.full((count, *old.shape[1:]), fill, old.dtype)]))
        return rows

    def reset(self, rows: np.ndarray) -> None:
        """These tracks' coordinates start over (their person was lost); their visibilities go on
        from where they were (see the module's docstring)."""
        self.last_time[rows], self.frequency[rows] = -1, _FIRST_FREQUENCY
        self.started[rows] = False

    def apply(self, rows: np.ndarray, landmarks: np.ndarray, microseconds: np.ndarray, width: int, height: int,
              object_scale: np.ndarray) -> np.ndarray:
        """Smoothed landmarks (R, L, 4) of tracks ``rows`` for their frames' ``landmarks`` (R, L, 4),
        stamped ``microseconds`` (R,); ``object_scale`` (R,): each object's size in pixels
        (MediaPipe's OBJECT_SCALE_ROI). The arithmetic is MediaPipe's, in its order (a rounding
        moves the next ROI, and tracking carries that on); the rows whose filters start are mended
        after the step rather than selected in every operation."""
        visibility = landmarks[..., 3].astype(np.float64)
        seen = self.seen[rows]
        visibility[seen] = VISIBILITY_ALPHA * visibility[seen] + (1 - VISIBILITY_ALPHA) * self.visibility[rows[seen]]
        self.visibility[rows], self.seen[rows] = visibility, True
        nanoseconds = np.asarray(microseconds, np.int64) * 1000
        object_scale = np.asarray(object_scale, np.float64)
        # a repeated (or older) stamp passes its values through; so does a too small object
        live = (self.last_time[rows] < nanoseconds) & (object_scale >= MIN_OBJECT_SCALE)
        coordinates = landmarks[..., :3].astype(np.float64)  # (R, L, 3) contiguous
        size = np.tile(np.array([width, height, width], np.float64), (coordinates.shape[1], 1))
        rows, nanoseconds, object_scale = rows[live], nanoseconds[live], object_scale[live]
        pixels = coordinates[live] * size
        last = self.last_time[rows]
        measured = (last != 0) & (nanoseconds != 0)
        frequency = self.frequency[rows]
        frequency[measured] = 1.0 / ((nanoseconds[measured] - last[measured]) * 1e-9)
        self.frequency[rows], self.last_time[rows] = frequency, nanoseconds
        frequency = frequency[:, None, None]
        change = pixels - self.value[rows]
        change *= (1.0 / object_scale)[:, None, None]
        change *= frequency
        keep = smoothing_alpha(self._derivate_cutoff, frequency)
        derivative = keep * change
        derivative += (1 - keep) * self.derivative[rows]
        alpha = np.abs(derivative)
        alpha *= self._beta
        alpha += self._min_cutoff
        alpha = smoothing_alpha(alpha, frequency)
        smoothed = alpha * pixels
        smoothed += (1 - alpha) * self.smoothed[rows]
        fresh = ~self.started[rows]  # a filter's first value passes through
        derivative[fresh], smoothed[fresh] = 0.0, pixels[fresh]
        self.value[rows], self.smoothed[rows], self.derivative[rows] = pixels, smoothed, derivative
        self.started[rows] = True
        smoothed /= size
        coordinates[live] = smoothed
        out = np.empty(landmarks.shape, np.float32)
        out[..., :3], out[..., 3] = coordinates, visibility
        return out
