import numpy as np
import pytest
import torch

from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.model.graph import spatial_adjacency
from stgcn_rt.model.layouts import get_layout
from stgcn_rt.model.optimized import OptimizedStream, OptimizedTwoStream, neighbour_table, optimize_model
from stgcn_rt.runtime import load_classifier


@pytest.mark.parametrize(("motion", "persons"), [("forward", 1), ("central", 5)])
def test_optimized_model_computes_the_reference_function(reference_checkpoint, motion, persons):
    loaded = load_checkpoint(reference_checkpoint(), motion=motion)
    optimized = optimize_model(loaded.model)
    assert isinstance(optimized, OptimizedTwoStream)
    x = torch.rand(3, 3, 150, 33, persons, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # fp32 summed in another order through ten blocks: logits of ~10 agree to ~1e-6 relative
        torch.testing.assert_close(optimized(x), loaded.model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["openpose18", "ntu25"])
def test_single_stream_without_edge_importance(reference_checkpoint, layout):
    loaded = load_checkpoint(reference_checkpoint(layout=layout, two_stream=False, edge_importance=False))
    optimized = optimize_model(loaded.model)
    assert isinstance(optimized, OptimizedStream)
    x = torch.rand(2, 3, 64, get_layout(layout).num_joints, 2)
    with torch.no_grad():
        torch.testing.assert_close(optimized(x), loaded.model(x), rtol=0, atol=1e-5)


def test_neighbour_table_holds_every_non_zero_of_the_adjacency():
    adjacency = torch.tensor(spatial_adjacency(get_layout("mediapipe33")), dtype=torch.float32)
    index, weight = neighbour_table(adjacency)
    partitions, joints, _ = adjacency.shape
    rebuilt = torch.zeros(joints * partitions, joints)
    for d in range(index.shape[0]):
        rebuilt[index[d], torch.arange(joints)] += weight[d]
    assert torch.equal(rebuilt, adjacency.permute(1, 0, 2).reshape(joints * partitions, joints))
    # sparse: each joint mixes a handful of (partition, joint) pairs, not all K x V
    assert index.shape[0] <= 8 and int((weight != 0).sum()) == int((adjacency != 0).sum())


def test_runner_switches_the_rewrite_on_and_off(demo_models, real_windows):
    ckpt, _ = demo_models
    with load_classifier(ckpt) as plain, load_classifier(ckpt, optimize=True) as optimized:
        assert not isinstance(plain.model, OptimizedTwoStream) and isinstance(optimized.model, OptimizedTwoStream)
        assert np.abs(plain.predict(real_windows[:3]) - optimized.predict(real_windows[:3])).max() <= 1e-5


def test_fp16_blocks_keep_the_ends_in_fp32(demo_models):
    ckpt, _ = demo_models
    optimized = optimize_model(load_checkpoint(ckpt).model)
    optimized.set_block_dtype(torch.float16)
    stream = optimized.origin
    assert stream.blocks[0].gcn_weight.dtype == torch.float16 and stream.blocks[0].neighbour_index.dtype == torch.long
    assert stream.input_scale.dtype == torch.float32 and stream.fcn_weight.dtype == torch.float32
