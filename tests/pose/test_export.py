"""stgcn-rt export-pose: both networks as validated ONNX (dynamic or static batch), and the
TensorRT-RTX builder parses and builds them ahead of time (in CI)."""

import pytest
from helpers import cli_runner

from stgcn_rt.cli import cli
from stgcn_rt.errors import StgcnError

pytest.importorskip("tflite")
pytest.importorskip("cv2")
onnx = pytest.importorskip("onnx")


@pytest.fixture
def dynamic(pose_onnx):
    return pose_onnx


def shape(path):
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def test_both_networks_are_written_validated_with_a_dynamic_batch(dynamic):
    assert [(e.role, e.path.name) for e in dynamic] == [("detector", "pose_detection.onnx"),
                                                       ("landmarks", "pose_landmark_full.onnx")]
    assert all(e.max_diff <= 1e-3 and e.batch is None for e in dynamic)
    assert shape(dynamic[0].path)[1:] == [224, 224, 3] and shape(dynamic[1].path)[1:] == [256, 256, 3]
    assert all(isinstance(shape(e.path)[0], str) for e in dynamic)  # a named, dynamic batch axis
    model = onnx.load(str(dynamic[1].path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["stgcn_rt.pose_network"] == "pose_landmark_full" and len(meta["stgcn_rt.tflite_sha256"]) == 64
    # the outputs BlazePose reads, under the .tflite file's names: no segmentation mask, no world landmarks
    assert [o.name for o in model.graph.output] == ["Identity", "Identity_1", "Identity_3"]
    convolutions = sum(node.op_type == "Conv" for node in model.graph.node)
    assert convolutions == 82  # of the .tflite file's 96: the segmentation decoder's are left out


def test_a_static_batch_through_the_cli_and_one_line_errors(tmp_path):
    result = cli_runner().invoke(cli, ["export-pose", "-o", str(tmp_path / "b4"), "--batch", "4"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("of PyTorch's on the demo clip") == 2
    assert shape(tmp_path / "b4" / "pose_landmark_full.onnx") == [4, 256, 256, 3]
    (tmp_path / "file").write_text("")
    result = cli_runner().invoke(cli, ["export-pose", "-o", str(tmp_path / "file")])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {tmp_path / 'file'} is a file: give a folder " \
                                                              "for the pose models"


def test_rtx_parses_and_builds_the_pose_networks_ahead_of_time(dynamic, tmp_path):
    import importlib.util
    import os

    from stgcn_rt.export.tensorrt_build import BuildOptions, build_engine

    if importlib.util.find_spec("tensorrt_rtx") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must prove the TensorRT build: pip install tensorrt-rtx")
        pytest.skip("tensorrt-rtx is not installed")
    for export in dynamic:
        engine, sidecar = build_engine(export.path, tmp_path / f"{export.role}.engine",
                                       BuildOptions(precision="fp32", builder="rtx", compute_capability="sm86",
                                                    max_batch=16, opt_batch=8), report=lambda text: None)
        assert engine.stat().st_size > 1_000_000
        size = 224 if export.role == "detector" else 256
        assert sidecar["inputs"] == [{"name": "image", "shape": [-1, size, size, 3], "dtype": "FLOAT"}]
        assert len(sidecar["outputs"]) == (2 if export.role == "detector" else 3)


def test_a_batch_under_one_is_refused(tmp_path):
    from stgcn_rt.pose.export import export_pose

    with pytest.raises(StgcnError, match="--batch must be 1 or more"):
        export_pose(tmp_path, batch=0)
