"""BlazePose running its exported networks (ONNX Runtime here; TensorRT engines on a GPU) instead of
PyTorch's: the same detections and landmarks on the same inputs, static batches in chunks, and one
line for every file that is missing or is not the network it is named after."""

import shutil

import numpy as np
import pytest
import torch
from helpers import cli_runner

from stgcn_rt.cli import cli
from stgcn_rt.errors import StgcnError
from stgcn_rt.pose import geometry
from stgcn_rt.pose.blazepose import BlazePose, BlazePoseNetworks
from stgcn_rt.pose.runners import model_path

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def static_onnx(tmp_path_factory):
    from stgcn_rt.pose.export import export_pose

    return export_pose(tmp_path_factory.mktemp("pose-b3"), batch=3)


@pytest.mark.parametrize("export", ["dynamic", "static batch 3"])
def test_exported_networks_give_pytorchs_detections_and_landmarks(pose_onnx, static_onnx, clip_frames, export):
    """Four frames of the clip (a static batch of 3 runs them as 3 + 1 padded): the same detections
    and, on the same regions, landmarks within a thousandth of a pixel."""
    folder = (pose_onnx if export == "dynamic" else static_onnx)[0].path.parent
    ours, theirs = BlazePoseNetworks(), BlazePoseNetworks(models=folder)
    frames = ours.frames(clip_frames[::10][:4])
    which = list(range(len(frames)))
    expected, got = ours.detect(frames, which), theirs.detect(frames, which)
    for (scores, boxes, keypoints), (their_scores, their_boxes, their_keypoints) in zip(expected, got):
        assert len(scores) == len(their_scores) >= 1
        assert np.abs(keypoints - their_keypoints).max() * 640 < 1e-3 and np.abs(boxes - their_boxes).max() < 1e-5
    rois = geometry.alignment_rects(np.stack([k[0, 0] for _, _, k in expected]),
                                    np.stack([k[0, 1] for _, _, k in expected]), 640, 480)
    (flags, points), (their_flags, their_points) = ours.landmarks(frames, which, rois), theirs.landmarks(
        frames, which, rois)
    assert (flags > 0.5).all() and np.abs(flags - their_flags).max() < 1e-4
    assert (np.abs(points[..., :2] - their_points[..., :2]) * [640, 480]).max() < 1e-3
    assert np.abs(points[..., 3:] - their_points[..., 3:]).max() < 1e-4


def test_blazepose_and_the_cli_run_the_exported_networks(pose_onnx, short_clip, tmp_path):
    """Tracking over the clip: a person in every frame, as with PyTorch's networks, within a pixel or
    so (a tracked ROI carries the last frame's rounding into the next crop, so the two drift apart
    by that much, not more); the CLI writes the keypoints and says where the networks came from."""
    folder = pose_onnx[0].path.parent
    ours, theirs = BlazePose(), BlazePose(models=folder)
    from stgcn_rt.pipeline.sources import video_frames

    drift = []
    for image in list(video_frames(short_clip))[:10]:
        expected, got = ours.process({"c": image})["c"], theirs.process({"c": image})["c"]
        assert expected is not None and got is not None
        drift.append(np.abs(expected[:, :2] - got[:, :2]).max())
    assert max(drift) < 5e-3
    out = tmp_path / "k.npz"
    result = cli_runner().invoke(cli, ["pose", str(short_clip), "-o", str(out), "--pose", "blazepose",
                                       "--models", str(folder)])
    assert result.exit_code == 0, result.stderr
    assert f"networks from {folder}" in result.stdout
    assert np.load(out)["keypoints"].shape == (40, 1, 33, 3)


def test_a_gpu_takes_an_engine_before_the_onnx_and_the_cpu_never(tmp_path):
    for name in ("pose_detection.onnx", "pose_detection.engine"):
        (tmp_path / name).write_bytes(b"")
    assert model_path(tmp_path, "detector", torch.device("cuda")).name == "pose_detection.engine"
    assert model_path(tmp_path, "detector", torch.device("cpu")).name == "pose_detection.onnx"
    with pytest.raises(StgcnError, match=r"has no pose_landmark_full.onnx \(or a TensorRT engine of it"):
        model_path(tmp_path, "landmarks", torch.device("cuda"))
    with pytest.raises(StgcnError, match=f"pose models: {tmp_path / 'no'} is not a folder: write one with "
                                         "stgcn-rt export-pose"):
        model_path(tmp_path / "no", "landmarks", torch.device("cpu"))


def test_a_file_that_is_not_its_network_is_one_line(pose_onnx, tmp_path):
    detector, landmarks = (export.path for export in pose_onnx)
    shutil.copyfile(detector, tmp_path / "pose_detection.onnx")
    shutil.copyfile(detector, tmp_path / "pose_landmark_full.onnx")
    with pytest.raises(StgcnError, match=r"pose_landmark_full.onnx takes \(None, 224, 224, 3\) and gives 2 outputs, "
                                         r"not the landmarks network's \(N, 256, 256, 3\) and 3"):
        BlazePoseNetworks(models=tmp_path)
    (tmp_path / "pose_landmark_full.onnx").write_bytes(b"not onnx")
    with pytest.raises(StgcnError, match="ONNX Runtime cannot open .*pose_landmark_full.onnx"):
        BlazePoseNetworks(models=tmp_path)


def test_an_engine_without_tensorrt_or_a_gpu_is_one_line(tmp_path):
    from stgcn_rt.pose.runners import load_network

    (tmp_path / "pose_detection.engine").write_bytes(b"not an engine")
    with pytest.raises(StgcnError, match="TensorRT is not installed|CUDA GPU|could not load"):
        load_network(tmp_path / "pose_detection.engine", "detector", torch.device("cuda"))


@pytest.mark.parametrize(("args", "message"), [
    (["--pose", "mediapipe", "--models", "m"], "--models is blazepose's: MediaPipe's solution runs its own networks"),
    (["--pose", "blazepose", "--precision", "fp16", "--models", "m"],
     "the networks in --models run in their files' precision"),
])
def test_models_where_they_cannot_run_are_one_line(short_clip, tmp_path, args, message):
    result = cli_runner().invoke(cli, ["pose", str(short_clip), "-o", str(tmp_path / "k.npz"), *args])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {message}"), result.stderr


def test_more_crops_than_a_file_takes_run_in_chunks(pose_onnx, static_onnx):
    """An engine's profile caps a dynamic batch (here set on an ONNX runner); a static batch pads its
    last chunk: either way each crop's outputs are the ones it gets in one call."""
    from stgcn_rt.pose.runners import load_network

    crops = torch.rand(5, 224, 224, 3) * 2 - 1
    whole = load_network(pose_onnx[0].path, "detector", torch.device("cpu"))
    expected = whole(crops)
    whole.max_batch = 2
    for network in (whole, load_network(static_onnx[0].path, "detector", torch.device("cpu"))):
        got = network(crops)
        assert [g.shape for g in got] == [e.shape for e in expected]
        assert all(torch.allclose(g, e, atol=1e-4) for g, e in zip(got, expected))
