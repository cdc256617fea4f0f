"""INT8 calibration windows: from an .npy of windows or from a folder of real videos (the pose step run offline)."""

import numpy as np
import pytest
from helpers import cli_runner

from stgcn_rt.cli import cli
from stgcn_rt.errors import StgcnError
from stgcn_rt.export.quantize import is_quantized
from stgcn_rt.pipeline.calibration import calibration_windows


@pytest.fixture
def video_folder(tmp_path, videos):
    """A folder with the first 100 frames of a real clip (and a file that is no video)."""
    cv2 = pytest.importorskip("cv2")
    folder = tmp_path / "clips"
    folder.mkdir()
    capture = cv2.VideoCapture(str(videos["clean_and_jerk"]))
    writer = None
    for _ in range(100):
        ok, image = capture.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                                     (image.shape[1], image.shape[0]))
        writer.write(image)
    writer.release()
    capture.release()
    (folder / "readme.txt").write_text("not a video")
    return folder


def test_quantize_calibrates_on_a_folder_of_videos(video_folder, short_windows_model, tmp_path, monkeypatch):
    """Pose extracted from the real frames, cut into windows of the model's 30 frames every 10."""
    pytest.importorskip("mediapipe")
    import stgcn_rt.export.quantize as quantize

    seen = []
    original = quantize.quantize_int8
    monkeypatch.setattr(quantize, "quantize_int8", lambda model, out, windows, *args, **kwargs: (
        seen.append(windows), original(model, out, windows, *args, **kwargs))[1])
    output = tmp_path / "int8.onnx"
    result = cli_runner().invoke(cli, ["quantize", str(short_windows_model), "-o", str(output), "--calib-video",
                                       str(video_folder), "--target", "onnxruntime", "--calib-method", "minmax"])
    assert result.exit_code == 0, result.stderr
    assert "on 8 calibration windows" in result.stderr and is_quantized(output)
    windows = seen[0]
    assert windows.shape == (8, 3, 30, 33, 1)  # 100 frames: windows start at 0, 10, ..., 70
    assert windows.dtype == np.float32 and 0 <= windows.min() and windows.max() <= 1
    assert (windows[:, 2] > 0.5).mean() > 0.5  # the lifter is seen: most landmarks visible


def test_calibration_sources_are_checked(tmp_path, demo_models, real_windows):
    calib = tmp_path / "windows.npy"
    np.save(calib, real_windows[:3])
    windows = calibration_windows(calib, None, demo_models[1])
    assert windows.shape == (3, 3, 150, 33, 1) and np.array_equal(windows, real_windows[:3])
    with pytest.raises(StgcnError, match="give --calib or --calib-video, not both"):
        calibration_windows(calib, tmp_path, demo_models[1])
    with pytest.raises(StgcnError, match="INT8 needs calibration windows"):
        calibration_windows(None, None, demo_models[1])
    with pytest.raises(StgcnError, match=f"no videos .* in {tmp_path}$"):
        calibration_windows(None, tmp_path, demo_models[1])
