"""MediaPipe pose, fully offline: 33 landmarks as (x/width, y/height, visibility) in [0, 1].

Only the legacy ``mediapipe.solutions.pose`` API with ``model_complexity=1`` runs from what the
mediapipe wheels 0.10.9 to 0.10.21 ship (``pose_landmark_full.tflite``); complexities 0 and 2 and the Tasks
API download their models at run time, which an offline camera host cannot do.
"""

from __future__ import annotations

import numpy as np

from stgcn_rt.errors import require


class PoseEstimator:
    """Single-person MediaPipe pose on BGR frames; a context manager that frees the graph on exit."""

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 static_image_mode: bool = False) -> None:
        mp = require("mediapipe", "pipeline", "Pose estimation")
        self._cv2 = require("cv2", "pipeline", "Pose estimation")
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=static_image_mode,
            model_complexity=1,  # the only complexity whose model ships inside the wheel
            smooth_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray | None:
        """Keypoints (33, 3) float32 in [0, 1], or None when no person is found."""
        rgb = self._cv2.cvtColor(frame_bgr, self._cv2.COLOR_BGR2RGB)
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        return landmarks_to_array(result.pose_landmarks.landmark)


def landmarks_to_array(landmarks) -> np.ndarray:  # noqa: ANN001 - a protobuf repeated field
    """MediaPipe's normalised landmarks to (33, 3) = (x, y, visibility), clipped to [0, 1].

    MediaPipe already divides x by the width and y by the height; points predicted outside the
    frame fall outside [0, 1] and are clipped, as the training data's range is [0, 1].
    """
    points = np.array([(lm.x, lm.y, lm.visibility) for lm in landmarks], dtype=np.float32)
    return np.clip(points, 0.0, 1.0)
