import pytest
import torch

from stgcn_rt.errors import StgcnError
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint, read_checkpoint


def _logits(path, **kw):
    loaded = load_checkpoint(path, **kw)
    torch.manual_seed(0)
    with torch.no_grad():
        return loaded.model(torch.rand(1, 3, 32, loaded.config.num_joints, 1))


@pytest.mark.parametrize("wrap", [None, "state_dict", "nested", "net"])
@pytest.mark.parametrize("module_prefix", [False, True])
def test_round_trips_through_every_container(reference_checkpoint, wrap, module_prefix):
    plain = reference_checkpoint("plain.pt")
    wrapped = reference_checkpoint("wrapped.pt", wrap=wrap, module_prefix=module_prefix)
    torch.testing.assert_close(_logits(wrapped), _logits(plain), rtol=0, atol=0)


def test_infers_the_network_shape(reference_checkpoint):
    loaded = load_checkpoint(reference_checkpoint(layout="openpose18", num_classes=7, edge_importance=False))
    config = loaded.config
    assert (config.num_classes, config.num_joints, config.partitions) == (7, 18, 3)
    assert config.layout == "openpose18"  # the only built-in 18-joint layout
    assert config.edge_importance is False
    assert config.classes == [f"class_{i}" for i in range(7)]
    assert loaded.adjacency_source == "checkpoint"


def test_default_classes_and_override(reference_checkpoint):
    path = reference_checkpoint()
    assert load_checkpoint(path).config.classes == ["normal", "shoplifting"]
    assert load_checkpoint(path, classes=["walk", "steal"]).config.classes == ["walk", "steal"]
    with pytest.raises(StgcnError, match="names 3 classes but .* has 2 outputs"):
        load_checkpoint(path, classes=["a", "b", "c"])


def test_stored_adjacency_wins_over_the_layout(reference_checkpoint, tmp_path):
    path = reference_checkpoint()
    state = torch.load(path, weights_only=True)
    for prefix in ("origin_stream.", "motion_stream."):
        state[prefix + "A"] = state[prefix + "A"] * 2.0
    custom = tmp_path / "custom_a.pt"
    torch.save(state, custom)
    loaded = load_checkpoint(custom, center=5)  # --center cannot override a stored A
    torch.testing.assert_close(loaded.model.origin_stream.A, state["origin_stream.A"])
    assert not torch.allclose(_logits(custom), _logits(path))


def test_checkpoint_without_adjacency_uses_layout_and_centre(reference_checkpoint, tmp_path):
    path = reference_checkpoint(center=11)
    state = {k: v for k, v in torch.load(path, weights_only=True).items() if not k.endswith(".A")}
    no_a = tmp_path / "no_a.pt"
    torch.save(state, no_a)
    loaded = load_checkpoint(no_a, center=11)
    assert loaded.adjacency_source == "layout"
    torch.testing.assert_close(_logits(no_a, center=11), _logits(path), rtol=0, atol=1e-6)
    assert not torch.allclose(_logits(no_a, center=0), _logits(path))


def test_missing_and_unexpected_keys_in_one_message(reference_checkpoint, tmp_path):
    state = torch.load(reference_checkpoint(), weights_only=True)
    del state["origin_stream.st_gcn_networks.3.tcn.2.weight"]
    state["origin_stream.extra_head.weight"] = torch.zeros(3)
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(StgcnError) as err:
        load_checkpoint(broken)
    message = str(err.value)
    assert "\n" not in message
    assert "missing keys: origin_stream.st_gcn_networks.3.tcn.2.weight" in message
    assert "unexpected keys: origin_stream.extra_head.weight" in message


def test_wrong_joint_count_for_layout(reference_checkpoint):
    with pytest.raises(StgcnError, match="has 33 joints but layout coco17 has 17"):
        load_checkpoint(reference_checkpoint(), layout="coco17")


@pytest.mark.parametrize("content, match", [
    (b"this is a text file, not a checkpoint\n", "not a readable PyTorch checkpoint"),
    (b"", "not a readable PyTorch checkpoint"),
    # bytes that torch's weights_only unpickler rejects by opcode, not by a class: no safety advice
    (b"garbage\n", r"not a readable PyTorch checkpoint \(truncated, corrupted or another format\): Unsupported"),
    (bytes(range(256)) * 3, r"format\): Unsupported operand"),
])
def test_not_a_checkpoint(tmp_path, content, match):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(StgcnError, match=match):
        load_checkpoint(bad)


def test_truncated_checkpoint(reference_checkpoint, tmp_path):
    data = reference_checkpoint().read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(StgcnError, match="truncated, corrupted"):
        load_checkpoint(cut)


def test_missing_file_and_non_model_content(tmp_path):
    with pytest.raises(StgcnError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    other = tmp_path / "other.pt"
    torch.save({"lr": torch.tensor(0.1)}, other)
    with pytest.raises(StgcnError, match="not an ST-GCN checkpoint"):
        load_checkpoint(other)


class Thing:
    pass


def test_pickled_objects_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"obj": Thing()}, evil)
    with pytest.raises(StgcnError, match=r"besides tensors \([\w.]*Thing\), which are not loaded for safety"):
        read_checkpoint(evil)


def test_demo_checkpoint_is_deterministic_and_labelled(tmp_path):
    a = make_demo_checkpoint(tmp_path / "a.pt")
    b = make_demo_checkpoint(tmp_path / "b.pt")
    assert a.read_bytes() == b.read_bytes()
    loaded = load_checkpoint(a)
    assert "UNTRAINED" in loaded.metadata["note"]
    assert loaded.config.classes == ["normal", "shoplifting"] and loaded.config.two_stream
