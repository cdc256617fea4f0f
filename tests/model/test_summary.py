"""FLOP counts, in total and per operator."""

import importlib.util

import pytest
from torch import nn

from stgcn_rt.model.summary import count_flops

HAS_COUNTER = importlib.util.find_spec("torch.utils.flop_counter") is not None


@pytest.mark.skipif(not HAS_COUNTER, reason="torch < 2.1 has no FLOP counter")
def test_flops_of_one_operator_kind():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Flatten(), nn.Linear(8 * 4 * 5, 2))
    shape = (1, 3, 4, 5)
    convolution, linear = 2 * 3 * 8 * 4 * 5, 2 * 8 * 4 * 5 * 2
    assert count_flops(model, shape) == convolution + linear
    assert count_flops(model, shape, "convolution") == convolution
    assert count_flops(model, shape, "addmm") == linear
    assert count_flops(model, shape, "bmm") == 0
    assert model[0].weight.device.type == "cpu"  # counted on a meta copy: the model stays where it was


@pytest.mark.skipif(HAS_COUNTER, reason="this torch has a FLOP counter")
def test_no_count_without_torchs_flop_counter():
    assert count_flops(nn.Linear(2, 2), (1, 2)) is None
