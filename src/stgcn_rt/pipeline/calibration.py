"""Calibration windows for INT8, from an .npy of real windows or from a folder of videos (whose poses
the pipeline extracts; :mod:`stgcn_rt.export.quantize` takes the windows)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from stgcn_rt.errors import StgcnError


def calibration_windows(calib: str | os.PathLike[str] | None, calib_video: str | os.PathLike[str] | None,
                        onnx_path: str | os.PathLike[str], report: Callable[[str], None] = print) -> np.ndarray:
    """Windows shaped for ``onnx_path`` (its persons and sequence length, from its metadata)."""
    from stgcn_rt.artefact import ModelMetadata
    from stgcn_rt.export.onnx_file import read_onnx_metadata
    from stgcn_rt.window import FRAMES, fit_persons, load_windows

    meta = ModelMetadata.from_onnx(read_onnx_metadata(onnx_path))
    persons, seq_len = meta.persons or 1, meta.seq_len or FRAMES
    if calib and calib_video:
        raise StgcnError("give --calib or --calib-video, not both")
    if calib:
        return fit_persons(load_windows(calib), persons)
    if calib_video:
        from stgcn_rt.pipeline.keypoints import windows_from_videos

        report(f"      extracting pose windows from the videos in {calib_video}")
        return windows_from_videos(calib_video, seq_len=seq_len, stride=10, persons=persons)
    raise StgcnError("INT8 needs calibration windows: --calib windows.npy or --calib-video DIR")
