"""Where MediaPipe's pose networks are: inside the user's mediapipe wheel, never shipped or downloaded
by stgcn-rt. MediaPipe 0.10.9 to 0.10.21 ship them, byte for byte the same."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from stgcn_rt.errors import StgcnError

#: the networks BlazePose runs, by role, as paths inside the mediapipe package
MODEL_FILES = {
    "detector": "modules/pose_detection/pose_detection.tflite",  # 224x224 SSD, 2,254 anchors
    "landmarks": "modules/pose_landmark/pose_landmark_full.tflite",  # 256x256 crop, 39 landmarks
}
#: the outputs BlazePose reads of each network, by their names in the .tflite file: the detector's
#: boxes and scores; the landmark network's landmarks, pose flag and heatmap. Its segmentation mask
#: (Identity_2, 256x256, a decoder of its own: 20 operators at full resolution) and world landmarks
#: (Identity_4) are not computed.
OUTPUTS = {"detector": ("Identity", "Identity_1"), "landmarks": ("Identity", "Identity_1", "Identity_3")}
SHIPPING_VERSIONS = "0.10.9 to 0.10.21"


def model_file(role: str) -> Path:
    """The .tflite file of ``role`` (detector or landmarks) in the installed mediapipe wheel, found
    without importing mediapipe (which takes seconds); one clear line where it is missing."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise StgcnError(f"BlazePose reads its networks from the mediapipe wheel, which is not installed: "
                         f"pip install 'stgcn-rt[pipeline]' (mediapipe {SHIPPING_VERSIONS} ship them)")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILES[role]
    if not path.is_file():
        version = importlib.metadata.version("mediapipe")
        raise StgcnError(f"mediapipe {version} has no {path.name}: install one of the versions that ship "
                         f"the pose networks, {SHIPPING_VERSIONS} (pip install 'mediapipe>=0.10.9,<=0.10.21')")
    return path
