import pytest
import torch

from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.model.fused import FusedTwoStream, fuse_two_stream
from stgcn_rt.runtime import load_classifier


@pytest.mark.parametrize("motion", ["forward", "central"])
@pytest.mark.parametrize("persons", [1, 5])
def test_fused_streams_compute_the_same_function(reference_checkpoint, motion, persons):
    loaded = load_checkpoint(reference_checkpoint(seed=11), motion=motion)
    fused = fuse_two_stream(loaded.model)
    assert isinstance(fused, FusedTwoStream)
    # one grouped convolution per layer for both streams: half the convolutions
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())  # noqa: E731
    assert convs(fused) * 2 == convs(loaded.model)
    x = torch.rand(3, 3, 150, 33, persons)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), loaded.model(x), rtol=0, atol=1e-4)


def test_single_stream_is_left_alone(reference_checkpoint):
    loaded = load_checkpoint(reference_checkpoint(two_stream=False))
    assert fuse_two_stream(loaded.model) is loaded.model


def test_runner_option_is_switchable(reference_checkpoint, real_windows):
    path = reference_checkpoint(seed=12)
    with load_classifier(path) as plain, load_classifier(path, optimize=True) as fused:
        assert not isinstance(plain.model, FusedTwoStream) and isinstance(fused.model, FusedTwoStream)
        assert abs(plain.predict(real_windows[:3]) - fused.predict(real_windows[:3])).max() <= 1e-5
