import numpy as np
import onnx
import pytest

from stgcn_rt.errors import StgcnError
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.export.onnx_file import read_onnx_metadata
from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier
from stgcn_rt.window import load_windows


def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One reference checkpoint exported for M=1 and M=5 (central motion, module. prefix)."""
    import torch
    from helpers import reference_state_dict

    folder = tmp_path_factory.mktemp("export")
    ckpt = folder / "ref.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference_state_dict(seed=7).items()}}, ckpt)
    loaded = load_checkpoint(ckpt, motion="central")
    out = {}
    for persons in (1, 5):
        path, comparisons = export_onnx(loaded, folder / f"m{persons}.onnx", ExportOptions(persons=persons),
                                        random_count=2)
        out[persons] = (path, comparisons)
    return loaded, out


@pytest.mark.parametrize("persons", [1, 5])
def test_static_shape_opset_and_metadata(exported, persons):
    loaded, out = exported
    path, comparisons = out[persons]
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert dims(model.graph.input[0]) == [1, 3, 150, 33, persons]
    assert dims(model.graph.output[0]) == [1, 2]
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    meta = read_onnx_metadata(path)
    assert meta["persons"] == str(persons) and meta["seq_len"] == "150"
    assert meta["layout"] == "mediapipe33" and meta["motion"] == "central"
    assert meta["classes"] == "normal,shoplifting"
    assert meta["checkpoint_sha256"] == loaded.sha256 and meta["untrained"] == "false"
    assert [(c.data, c.windows, c.passed) for c in comparisons] == [("random windows", 2, True)]


def test_only_operators_tensorrt_parses(exported):
    _, out = exported
    ops = {node.op_type for node in onnx.load(str(out[5][0])).graph.node}
    assert "Einsum" not in ops and "AveragePool" not in ops
    # Flatten and Reciprocal: torch 2.0's exporter writes the pooling and the classifier with them
    assert ops <= {"Reshape", "Conv", "Relu", "Transpose", "BatchNormalization", "MatMul", "Add",
                   "ReduceSum", "Mul", "Unsqueeze", "Slice", "Sub", "Concat", "Shape", "Expand",
                   "Flatten", "Reciprocal"}
    assert "Constant" not in ops and "Identity" not in ops  # folded into initializers / bypassed


def test_fp16_export_without_cpu_fp16_convolutions_is_one_line(exported, tmp_path, monkeypatch):
    import stgcn_rt.export.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "_cpu_runs_fp16_convolutions", lambda: False)
    loaded, _ = exported
    with pytest.raises(StgcnError, match=r"an fp16 ONNX needs torch >= 2.1 .* export fp32, from which stgcn-rt build"):
        export_onnx(loaded, tmp_path / "m.onnx", ExportOptions(precision="fp16"))
    assert not any(tmp_path.iterdir())


def test_fp16_export_pools_in_fp32(reference_checkpoint, real_windows, tmp_path):
    """A checkpoint whose last block's activations reach the hundreds: the fp16 ONNX sums its pooling
    in fp32 (the ReduceSums read fp32 tensors), so ONNX Runtime gives finite logits near fp32's."""
    from helpers import loud_last_block

    from stgcn_rt.export import onnx_export

    if not onnx_export._cpu_runs_fp16_convolutions():
        pytest.skip("an fp16 export needs torch >= 2.1")  # JetPack 5's torch 2.0: tested in the main suite
    loaded = loud_last_block(load_checkpoint(reference_checkpoint()), 10)
    path, comparisons = export_onnx(loaded, tmp_path / "fp16.onnx", ExportOptions(precision="fp16"),
                                    random_count=1)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.input)}
    sums = [node for node in model.graph.node if node.op_type == "ReduceSum"]
    assert sums and {types[node.input[0]] for node in sums} == {onnx.TensorProto.FLOAT}
    with TorchClassifier(loaded) as ref, OnnxClassifier(path) as fp16:
        expected, got = ref.predict(real_windows[:4]), fp16.predict(real_windows[:4])
    assert np.isfinite(got).all() and np.abs(expected - got).max() <= 1e-2
    assert comparisons[0].passed


@pytest.mark.parametrize("persons", [1, 5])
def test_parity_on_random_and_real_windows(exported, real_windows, persons):
    loaded, out = exported
    count = 14 if persons == 1 else 2  # M=5 windows cost five times as much on 2 CPU cores
    windows = np.concatenate([real_windows[:count, ..., :1]] * persons, axis=-1)
    windows[..., 1:] *= 0.5  # other persons differ from the first
    with TorchClassifier(loaded) as ref, OnnxClassifier(out[persons][0]) as onnx_model:
        for data in (windows, np.random.default_rng(1).random(windows.shape, dtype=np.float32)):
            expected, got = ref.logits(data), onnx_model.logits(data)
            assert np.abs(expected - got).max() <= 1e-4
            np.testing.assert_array_equal(expected.argmax(1), got.argmax(1))
            few = data[:2]  # probabilities: softmax on the same logits, so a few windows suffice
            assert np.abs(ref.predict(few) - onnx_model.predict(few)).max() <= 1e-4


def test_dynamic_batch_with_probabilities_and_custom_names(exported, tmp_path):
    loaded, _ = exported
    options = ExportOptions(dynamic_batch=True, input_name="skeleton", output_name="logits",
                            probs_output="probs", seq_len=64)
    path, comparisons = export_onnx(loaded, tmp_path / "dyn.onnx", options, random_count=2)
    model = onnx.load(str(path))
    assert dims(model.graph.input[0])[0] == "batch" and dims(model.graph.input[0])[2] == 64
    assert [o.name for o in model.graph.output] == ["logits", "probs"]
    with OnnxClassifier(path) as runner:
        assert runner.batch_size is None
        probs = runner.session.run(["probs"], {"skeleton": np.random.rand(3, 3, 64, 33, 1).astype(np.float32)})[0]
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert comparisons[0].passed


def test_static_batch_pads_partial_chunks(exported, tmp_path, real_windows):
    loaded, _ = exported
    path, _ = export_onnx(loaded, tmp_path / "b4.onnx", ExportOptions(batch=4), validate=False)
    with OnnxClassifier(path) as runner, TorchClassifier(loaded) as ref:
        assert runner.input_shape == (4, 3, 150, 33, 1)
        windows = real_windows[:6]  # one full chunk of 4, one padded chunk of 2
        assert np.abs(runner.logits(windows) - ref.logits(windows)).max() <= 1e-4


def test_validation_with_real_windows_file(exported, tmp_path, real_windows):
    loaded, _ = exported
    data = tmp_path / "real.npy"
    np.save(data, real_windows)
    _, comparisons = export_onnx(loaded, tmp_path / "v.onnx", ExportOptions(), data=data, random_count=1)
    assert [c.data for c in comparisons] == ["random windows", "real windows (real.npy)"]
    assert comparisons[1].windows == len(real_windows) and comparisons[1].passed


def test_missing_output_directory_leaves_nothing(exported, tmp_path):
    loaded, _ = exported
    with pytest.raises(StgcnError, match="does not exist"):
        export_onnx(loaded, tmp_path / "no" / "such" / "m.onnx", ExportOptions())
    assert list(tmp_path.iterdir()) == []


def test_invalid_options_are_refused(exported, tmp_path):
    loaded, _ = exported
    for options, match in ((ExportOptions(persons=0), "persons"), (ExportOptions(opset=13), "opset"),
                           (ExportOptions(input_name="x", output_name="x"), "distinct")):
        with pytest.raises(StgcnError, match=match):
            export_onnx(loaded, tmp_path / "m.onnx", options)
    with pytest.raises(StgcnError, match="at least one random window, not 0"):
        export_onnx(loaded, tmp_path / "m.onnx", ExportOptions(), random_count=0)
    assert not any(tmp_path.iterdir())


def test_load_windows_rejects_bad_files(tmp_path):
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((3, 150, 33)))
    with pytest.raises(StgcnError, match=r"must be \(N, C, T, V, M\)"):
        load_windows(flat)
    text = tmp_path / "text.npy"
    text.write_text("nope")
    with pytest.raises(StgcnError, match="not a readable .npy"):
        load_windows(text)
