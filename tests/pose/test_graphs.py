"""CUDA graphs of the pose networks: what holds without a GPU (tests/pose/test_blazepose_gpu.py checks them on one)."""

import torch

from stgcn_rt.pose.graphs import GraphedNetwork


def test_inputs_on_the_cpu_run_the_network_itself_and_capture_nothing():
    calls = []

    def network(crops):
        calls.append(crops.shape)
        return (crops * 2,)

    graphed = GraphedNetwork(network)
    (out,) = graphed(torch.ones(3, 4, 4, 3))
    assert torch.equal(out, torch.full((3, 4, 4, 3), 2.0)) and calls == [(3, 4, 4, 3)]
    assert graphed.captured == 0
