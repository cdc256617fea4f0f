"""MediaPipe's pose networks read from the installed wheel and run by PyTorch, output by output
against ai-edge-litert (the .tflite run by Google's own CPU runtime) on the same inputs."""

import numpy as np
import pytest
import torch

from stgcn_rt.errors import StgcnError
from stgcn_rt.pose.models import model_file
from stgcn_rt.pose.tflite_graph import TfliteNetwork, same_padding

pytest.importorskip("tflite")


def reference(path, x):
    """The outputs of ai-edge-litert's interpreter, by output name."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(path))
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


@pytest.fixture(scope="module")
def crops():
    """A real person: the demo clip's frame 100 as the landmark network's 256x256 input ([0, 1]) and
    as the detector's 224x224 one ([-1, 1])."""
    cv2 = pytest.importorskip("cv2")
    from stgcn_rt.data import demo_video

    capture = cv2.VideoCapture(str(demo_video()))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    assert ok
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    return {"landmarks": cv2.resize(rgb, (256, 256))[None], "detector": cv2.resize(rgb, (224, 224))[None] * 2 - 1}


@pytest.fixture(scope="module")
def networks():
    pytest.importorskip("mediapipe")
    return {role: TfliteNetwork(model_file(role)).eval() for role in ("detector", "landmarks")}


@pytest.mark.parametrize("role", ["detector", "landmarks"])
def test_every_output_matches_litert_on_a_real_frame(networks, crops, role):
    x = crops[role]
    expected = reference(networks[role].path, x)
    with torch.no_grad():
        got = [out.numpy() for out in networks[role](torch.from_numpy(x))]
    assert networks[role].output_names == sorted(expected, key=lambda name: int(name.split("_")[-1])
                                                 if "_" in name else 0)
    for name, out in zip(networks[role].output_names, got):
        ref = expected[name]
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-3 * max(1.0, np.abs(ref).max()), name
    if role == "landmarks":  # 39 landmarks (x, y, z, visibility, presence) in pixels of the 256 crop
        xy = got[0].reshape(39, 5)[:, :2]
        assert np.abs(xy - expected["Identity"].reshape(39, 5)[:, :2]).max() <= 0.05
        assert expected["Identity_1"].item() > 0.5  # the pose flag: a person is in the crop


def test_a_batch_gives_each_window_its_own_result(networks, crops):
    x = torch.from_numpy(np.concatenate([crops["landmarks"], np.flip(crops["landmarks"], 2).copy(),
                                         np.zeros_like(crops["landmarks"])]))
    with torch.no_grad():
        batch = networks["landmarks"](x)
        single = networks["landmarks"](x[1:2])
    for together, alone in zip(batch, single):
        # to fp32's rounding, which on some CPUs depends on the batch (3e-5 of the value on an AMD EPYC)
        torch.testing.assert_close(together[1:2], alone, rtol=1e-4, atol=1e-4)


def test_chosen_outputs_leave_out_the_operators_only_the_others_need(networks, crops):
    full = networks["landmarks"]
    pruned = TfliteNetwork(model_file("landmarks"), ["Identity_3", "Identity"]).eval()
    assert pruned.output_names == ["Identity_3", "Identity"]
    # the segmentation mask's decoder and the world landmarks' head are gone, with their weights
    assert len(pruned.steps) < len(full.steps) - 20
    assert sum(w.numel() for w in pruned.weights.values()) < sum(w.numel() for w in full.weights.values())
    x = torch.from_numpy(crops["landmarks"])
    with torch.no_grad():
        got, expected = pruned(x), full(x)
    assert torch.equal(got[0], expected[3]) and torch.equal(got[1], expected[0])
    with pytest.raises(StgcnError, match=r"pose_landmark_full.tflite has no output Identity_9 \(it has Identity, "):
        TfliteNetwork(model_file("landmarks"), ["Identity", "Identity_9"])


def test_tensorflows_same_padding_puts_the_odd_pixel_after():
    assert same_padding(224, 3, 2) == (0, 1) and same_padding(225, 3, 2) == (1, 1)
    assert same_padding(7, 5, 1) == (2, 2) and same_padding(4, 1, 1) == (0, 0)


def test_a_wheel_without_the_networks_is_one_line(monkeypatch, tmp_path):
    import importlib.metadata
    import importlib.util
    from types import SimpleNamespace

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(
        submodule_search_locations=[str(tmp_path)]))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.10.30")
    with pytest.raises(StgcnError, match=r"^mediapipe 0.10.30 has no pose_landmark_full.tflite: install one of the "
                                         r"versions that ship the pose networks, 0.10.9 to 0.10.21"):
        model_file("landmarks")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StgcnError, match="mediapipe wheel, which is not installed"):
        model_file("detector")


@pytest.mark.parametrize("role", ["detector", "landmarks"])
def test_torch_compile_traces_each_network_as_one_graph(networks, crops, role):
    """No operator reads its flatbuffer options while running, so torch.compile (BlazePose's stages
    on a GPU) sees each network whole: one graph, no break, a compilation per shape rather than per
    piece between breaks. Traced here without compiling."""
    explained = torch._dynamo.explain(networks[role])(torch.from_numpy(crops[role]))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
