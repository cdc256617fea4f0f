"""The video pipeline: sources, pose, tracking, windows, events. Needs the [pipeline] extra."""

from __future__ import annotations

import importlib.util

from stgcn_rt.errors import MissingDependency

PIPELINE_PACKAGES = ("cv2", "mediapipe")


def require_pipeline_packages() -> None:
    """Fail before any work (a model loaded, a demo exported) when the [pipeline] extra is missing.

    Looks the packages up without importing them: importing MediaPipe takes seconds.
    """
    for module in PIPELINE_PACKAGES:
        if importlib.util.find_spec(module) is None:
            raise MissingDependency(module, "pipeline", "The video pipeline")
