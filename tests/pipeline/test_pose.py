"""MediaPipe pose on the real videos: a person in most frames, keypoints in [0, 1]."""

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from stgcn_rt.pipeline.pose import PoseEstimator  # noqa: E402


@pytest.mark.parametrize("name, minimum", [("clean_and_jerk", 0.95), ("skateboarding", 0.6)])
def test_person_found_in_most_frames(videos, name, minimum):
    capture = cv2.VideoCapture(str(videos[name]))
    found, frames = 0, 0
    with PoseEstimator() as pose:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            points = pose(cv2.resize(image, (640, 480)))
            frames += 1
            if points is not None:
                found += 1
                assert points.shape == (33, 3) and points.dtype == np.float32
                assert points.min() >= 0.0 and points.max() <= 1.0
    rate = found / frames
    print(f"{name}: person in {rate:.0%} of {frames} frames")
    assert frames == 300 and rate >= minimum
