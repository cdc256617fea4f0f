"""CUDA graphs of the pose stages: what holds without a GPU (tests/pose/test_blazepose_gpu.py checks them on one)."""

import torch

from stgcn_rt.pose.graphs import GraphedCall


def test_inputs_on_the_cpu_run_the_function_itself_and_capture_nothing():
    calls = []

    def stage(frames, scale, rows):
        calls.append((frames.shape, scale, rows.shape))
        return (frames[rows] * scale,)

    graphed = GraphedCall(stage, resident=1)
    (out,) = graphed(torch.ones(3, 4, 4, 3), 2.0, torch.tensor([0, 2]))
    assert torch.equal(out, torch.full((2, 4, 4, 3), 2.0))
    assert calls == [((3, 4, 4, 3), 2.0, (2,))]
    assert graphed.captured == 0
