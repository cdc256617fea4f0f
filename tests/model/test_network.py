import pytest
import torch
from reference_stgcn import reference_stream, reference_two_stream

from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.model.network import STGCN, ModelConfig, block_shapes, motion_of


@pytest.mark.parametrize("motion", ["forward", "central"])
@pytest.mark.parametrize("persons", [1, 5])
def test_two_stream_matches_the_reference_forward(reference_checkpoint, motion, persons):
    from helpers import reference_state_dict

    path = reference_checkpoint(seed=3)
    loaded = load_checkpoint(path, motion=motion)
    x = torch.rand(2, 3, 40, 33, persons)
    with torch.no_grad():
        ours = loaded.model(x)
        ref = reference_two_stream(reference_state_dict(seed=3), x, motion)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_single_stream_matches_the_reference(reference_checkpoint):
    from helpers import reference_state_dict

    path = reference_checkpoint(two_stream=False, layout="ntu25", num_classes=5, seed=4)
    loaded = load_checkpoint(path)
    assert not loaded.config.two_stream
    x = torch.rand(1, 3, 30, 25, 2)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(x), reference_stream(reference_state_dict(two_stream=False, layout="ntu25",
                                                                   num_classes=5, seed=4), x),
            rtol=0, atol=1e-5)


def test_same_weights_serve_one_and_five_persons(reference_checkpoint):
    loaded = load_checkpoint(reference_checkpoint())
    one = torch.rand(1, 3, 150, 33, 1)
    five = one.repeat(1, 1, 1, 1, 5)  # five identical persons average to the one-person result
    with torch.no_grad():
        assert loaded.model(five).shape == (1, 2)
        torch.testing.assert_close(loaded.model(five), loaded.model(one), rtol=0, atol=1e-5)


def test_motion_definitions():
    x = torch.arange(5, dtype=torch.float32).pow(2).reshape(1, 1, 5, 1, 1)  # 0 1 4 9 16
    forward = motion_of(x, "forward").flatten().tolist()
    central = motion_of(x, "central").flatten().tolist()
    assert forward == [0, 1, 3, 5, 7]
    assert central == [0, 1 - 0.5 * 4 - 0.5 * 0, 4 - 0.5 * 9 - 0.5 * 1, 9 - 0.5 * 16 - 0.5 * 4, 0]
    with pytest.raises(ValueError):
        motion_of(x, "backward")


def test_block_shapes_follow_the_network():
    """block_shapes() (what the kernel scripts enumerate) matches the blocks the network builds."""
    shapes = block_shapes(frames=150)
    model = STGCN(ModelConfig(two_stream=False), torch.ones(3, 33, 33))
    assert [(s.in_channels, s.out_channels, s.stride, s.residual) for s in shapes] == [
        (b.gcn.conv.in_channels, b.tcn[2].out_channels, b.stride, b.residual_kind) for b in model.st_gcn_networks]
    assert [s.frames for s in shapes][::3] == [150, 150, 75, 38] and shapes[-1].out_frames == 38
