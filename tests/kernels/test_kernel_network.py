"""The Triton-kernel model computes the reference function. Without a GPU the kernels run in
Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py before triton is imported); with one,
the GPU tests in tests/runtime/test_gpu.py run them compiled and these are skipped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", minversion="3.2")  # the kernels use its newer autotuner and TMA API

from helpers import amplified  # noqa: E402

from stgcn_rt.errors import StgcnError  # noqa: E402
from stgcn_rt.kernels.network import KernelNetwork, neighbours_per_partition  # noqa: E402
from stgcn_rt.model.checkpoint import load_checkpoint  # noqa: E402
from stgcn_rt.model.graph import spatial_adjacency  # noqa: E402
from stgcn_rt.model.layouts import get_layout  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="interpreter tests; tests/runtime/test_gpu.py "
                                                                  "runs the kernels on the GPU")


def test_neighbour_tables_rebuild_the_adjacency():
    adjacency = torch.tensor(spatial_adjacency(get_layout("mediapipe33")), dtype=torch.float32)
    adjacency = adjacency * torch.rand_like(adjacency)
    depth = int((adjacency != 0).sum(dim=1).max())
    index, weight = neighbours_per_partition(adjacency, depth)
    rebuilt = torch.zeros_like(adjacency)
    for k in range(adjacency.shape[0]):
        for d in range(depth):
            for w in range(adjacency.shape[2]):
                rebuilt[k, index[k, d, w], w] += weight[k, d, w]
    torch.testing.assert_close(rebuilt, adjacency, rtol=0, atol=0)
    assert depth < adjacency.shape[1]  # sparse: far fewer neighbours than joints


@pytest.mark.parametrize(("two_stream", "motion", "layout", "tma_loads"),
                         [(True, "forward", "mediapipe33", True), (True, "central", "mediapipe33", False),
                          (False, "forward", "ntu25", True)])
def test_triton_model_computes_the_reference_function(reference_checkpoint, two_stream, motion, layout, tma_loads):
    """fp32 blocks through the kernels: every block kind (no residual, identity, strided convolution),
    two persons, frames that do not divide by the strides; stride-1 temporal convolutions through
    the tensor-memory-accelerator kernel or the pointer-load one."""
    loaded = load_checkpoint(reference_checkpoint(layout=layout, two_stream=two_stream), motion=motion)
    model = KernelNetwork(loaded.model, tma_loads=tma_loads)
    x = torch.rand(1, 3, 7, get_layout(layout).num_joints, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded.model(x), rtol=0, atol=2e-5)


@pytest.mark.parametrize("motion", ["forward", "central"])
def test_prepared_rows_are_each_streams_normalised_input(reference_checkpoint, motion):
    """Several windows of several persons: each position lands in its (window, person, frame, joint)
    row, the motion stream's rows hold the temporal differences, both after the input BatchNorm."""
    from stgcn_rt.kernels.ops import prepare_input
    from stgcn_rt.model.network import motion_of

    loaded = load_checkpoint(reference_checkpoint(), motion=motion)
    model = KernelNetwork(loaded.model)
    n, c, t, v, m = 2, 3, 5, 33, 3
    x = torch.rand(n, c, t, v, m)
    rows = prepare_input(x, model.input_scale, model.input_shift, motion, torch.float32)
    for s, (stream, inputs) in enumerate([(loaded.model.origin_stream, x),
                                          (loaded.model.motion_stream, motion_of(x, motion))]):
        with torch.no_grad():  # data_bn on (N*M, V*C, T), as the reference network applies it
            normalised = stream.data_bn(inputs.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t))
        expected = normalised.reshape(n, m, v, c, t).permute(0, 1, 4, 2, 3).reshape(n * m * t * v, c)
        torch.testing.assert_close(rows[s], expected, rtol=0, atol=1e-6)


def in_planes(y: torch.Tensor, frames: int, joints: int, planes: int) -> torch.Tensor:
    """(S, clips x frames x joints, C) -> the frame-plane layout of graph_conv(..., planes=planes)."""
    streams, _, channels = y.shape
    per_plane = -(-frames // planes)
    clips = y.reshape(streams, -1, frames, joints, channels)
    padded = torch.zeros(streams, clips.shape[1], per_plane * planes, joints, channels)
    padded[:, :, :frames] = clips
    split = padded.reshape(streams, -1, per_plane, planes, joints, channels).transpose(2, 3)
    return split.reshape(streams, -1, channels)


@pytest.mark.parametrize(("residual", "stride", "frames"),
                         [("none", 1, 6), ("identity", 1, 6), ("convolution", 1, 6), ("convolution", 2, 7),
                          ("convolution", 2, 6), ("none", 2, 11)])
def test_tma_temporal_convolution_equals_the_pointer_load_one(residual, stride, frames):
    """Three clips per stream (each box's rows outside its clip must arrive as zeros, not as the
    neighbouring clip's rows), 40 channels (a partial channel block), every residual form; strided,
    from frame planes (an odd frame count leaves the second plane a zero frame)."""
    from stgcn_rt.kernels.ops import temporal_conv, tma_available

    assert tma_available(torch.device("cpu"))  # the interpreter emulates it
    streams, clips, joints, channels = 2, 3, 33, 40
    y = torch.randn(streams, clips * frames * joints, channels)
    w, bias = torch.randn(streams, 9, channels, channels) * 0.1, torch.randn(streams, channels)
    block_input = {"none": None, "identity": torch.randn(streams, clips * frames * joints, channels),
                   "convolution": torch.randn(streams, clips * frames * joints, 16)}[residual]
    residual_w = torch.randn(streams, 16, channels) if residual == "convolution" else None
    args = (w, bias, frames, joints, stride, block_input, residual_w)
    expected = temporal_conv(y, *args, tma=False)
    assert expected.shape[1] == clips * ((frames - 1) // stride + 1) * joints
    torch.testing.assert_close(temporal_conv(in_planes(y, frames, joints, stride), *args, tma=True), expected,
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("classes", [2, 400])
def test_pooling_in_the_last_temporal_convolution(classes):
    """``pool=True``: the tiles' row-group sums, pooled and classified by one kernel, give what the
    stored rows give through the pooling kernel: three windows of two persons, 9 frames of 33
    joints (groups that straddle frames, a last group part-filled), a Kinetics-size head too."""
    from stgcn_rt.kernels.ops import POOL_ROWS, classify_row_sums, pool_and_classify, temporal_conv

    streams, windows, persons, frames, joints, channels = 2, 3, 2, 9, 33, 48
    y = torch.randn(streams, windows * persons * frames * joints, channels)
    w, bias = torch.randn(streams, 9, channels, channels) * 0.1, torch.randn(streams, channels)
    args = (y, w, bias, frames, joints, 1, y, None)
    sums = temporal_conv(*args, tma=True, pool=True)
    assert sums.shape == (streams, windows * persons * -(-frames * joints // POOL_ROWS), channels)
    head_w, head_b = torch.randn(streams, channels, classes), torch.randn(streams, classes)
    expected = pool_and_classify(temporal_conv(*args, tma=True), windows, head_w, head_b)
    got = classify_row_sums(sums, windows, persons * frames * joints, head_w, head_b)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="pools in its epilogue only with tensor-memory-accelerator loads"):
        temporal_conv(*args, tma=False, pool=True)


@pytest.mark.parametrize("pool_in_epilogue", [True, False])
def test_every_temporal_convolution_takes_the_loads_asked_for(monkeypatch, reference_checkpoint, pool_in_epilogue):
    """With TMA loads every block's temporal convolution takes them, the last one pooling its rows
    unless ``pool_in_epilogue`` is off (then the pooling kernel runs); same probabilities either way."""
    from stgcn_rt.kernels import network as kernel_network

    calls = []

    def recording(*args, **kwargs):
        calls.append((args[8], args[9]))  # tma, pool
        return temporal_conv(*args, **kwargs)

    temporal_conv = kernel_network.temporal_conv
    monkeypatch.setattr(kernel_network, "temporal_conv", recording)
    loaded = load_checkpoint(reference_checkpoint())
    model = KernelNetwork(loaded.model, tma_loads=True, pool_in_epilogue=pool_in_epilogue)
    x = torch.rand(2, 3, 6, 33, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded.model(x), rtol=0, atol=2e-5)
    assert calls == [(True, False)] * (len(model.blocks) - 1) + [(True, pool_in_epilogue)]


def test_graph_convolution_writes_frame_planes(demo_models):
    """planes=2: the same rows as the frames in order, split by frame parity, the odd plane's
    frame beyond an odd clip zero; a strided block through them equals the pointer-load block."""
    from stgcn_rt.kernels.ops import graph_conv

    model = KernelNetwork(load_checkpoint(demo_models[0]).model)
    block = model.blocks[4]  # 64 -> 128, stride 2
    assert block.stride == 2
    frames, joints = 5, 33
    x = torch.randn(2, 2 * frames * joints, 64)
    args = (block.index, block.weight, block.depths, block.gcn_w, block.gcn_bias, joints, frames)
    in_order = graph_conv(x, *args)
    planes = graph_conv(x, *args, planes=2)
    torch.testing.assert_close(planes, in_planes(in_order, frames, joints, 2), rtol=0, atol=1e-5)
    beyond = planes.reshape(2, 2, 2, 3, joints, -1)[:, :, 1, 2]  # stream, clip, odd plane, its third frame
    assert beyond.abs().max() == 0 and planes.abs().max() > 0
    torch.testing.assert_close(block(x, frames, joints, tma=True), block(x, frames, joints, tma=False),
                               rtol=0, atol=1e-5)


def test_no_tma_loads_without_tensor_descriptors(monkeypatch):
    """A Triton older than 3.4 has no tensor descriptors: the model keeps the pointer loads."""
    from stgcn_rt.kernels.ops import tma_available

    monkeypatch.setitem(sys.modules, "triton.tools.tensor_descriptor", None)  # its import now fails
    assert not tma_available(torch.device("cpu"))


def test_fp16_blocks_agree_within_fp16_error(demo_models, real_windows):
    loaded = load_checkpoint(demo_models[0])
    model = KernelNetwork(loaded.model)
    model.set_block_dtype(torch.float16)
    assert model.blocks[0].gcn_w.dtype == torch.float16 and model.blocks[0].gcn_bias.dtype == torch.float32
    x = torch.from_numpy(real_windows[:1, :, 40:48])
    with torch.no_grad():
        probs, ref = torch.softmax(model(x), 1), torch.softmax(loaded.model(x), 1)
    assert (probs - ref).abs().max() <= 1e-3


def test_kernels_compile_for_jetson_orin_and_hopper(tmp_path):
    """Without a GPU, Triton still compiles for one: every kernel specialisation the model launches
    builds for sm_87 (Jetson Orin) and sm_90 (H100) within the architecture's shared memory."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"TRITON_CACHE_DIR": str(tmp_path)}
    script = Path(__file__).with_name("kernel_compile_check.py")
    done = subprocess.run([sys.executable, str(script), "87", "90"], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    compiled = [json.loads(line) for line in done.stdout.splitlines()]
    shapes = {(c["kernel"], json.dumps(c["shape"], sort_keys=True)) for c in compiled}
    # six graph and six temporal specialisations; input, pooling, the classifier from means and from
    # row-group sums; for sm_90 only, seven temporal ones with tensor-memory-accelerator loads (the
    # last block's twice: rows or row-group sums) and the two graph ones writing frame planes; and for
    # fp8 operands, those seven temporal ones again and the six graph ones writing fp8 rows
    assert len(shapes) == 38
    assert len(compiled) == 2 * len(shapes) - 22
    shared_limit = {87: 163 * 1024, 90: 227 * 1024}  # bytes per block, opted in
    assert all(c["shared"] <= shared_limit[c["arch"]] for c in compiled)


def test_a_dense_graph_is_refused_in_one_line(reference_checkpoint):
    """A checkpoint whose stored A links every joint to every other is beyond the kernels' gather depth."""
    loaded = load_checkpoint(reference_checkpoint())
    for stream in (loaded.model.origin_stream, loaded.model.motion_stream):
        stream.A.fill_(1.0 / 33)
    with pytest.raises(StgcnError, match="at most 15 neighbours per joint and partition; this checkpoint's graph "
                                         "has 33: use the optimized rewrite"):
        KernelNetwork(loaded.model)


@pytest.mark.parametrize("classes", [2, 400])
def test_pooling_and_classifiers_for_small_and_large_heads(classes):
    """Both streams' classifiers summed and their softmax, for a two-class head and a Kinetics-size
    one (the classifier steps through blocks of classes and channels, the softmax across blocks)."""
    from stgcn_rt.kernels.ops import pool_and_classify

    streams, windows, rows, channels = 2, 3, 10, 256
    y = torch.randn(streams, windows * rows, channels)
    w, b = torch.randn(streams, channels, classes), torch.randn(streams, classes)
    pooled = y.reshape(streams, windows, rows, channels).mean(dim=2)
    expected = (torch.einsum("swc,sck->swk", pooled, w) + b[:, None]).sum(dim=0)
    out = torch.full((windows, 2, classes), float("nan"))
    assert pool_and_classify(y, windows, w, b, out) is out
    torch.testing.assert_close(out[:, 0], expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out[:, 1], torch.softmax(expected, dim=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block_index", [0, 4])
def test_pipelined_and_unrolled_graph_convolutions_agree(demo_models, block_index):
    """The graph convolution's two loop forms over channel blocks (the autotuner picks per layer)
    compute the same: block 0 (3 input channels, one block), block 4 (64 -> 128, two blocks of 32)."""
    from stgcn_rt.kernels import ops as kernels

    block = KernelNetwork(load_checkpoint(demo_models[0]).model).blocks[block_index]
    streams, partitions, depth, joints = block.index.shape
    c_in, c_out = block.gcn_w.shape[-2:]
    x = torch.randn(streams, 3 * joints, c_in)
    packed = sum(count << (4 * k) for k, count in enumerate(block.depths))
    outputs = []
    for pipelined in (False, True):
        out = torch.empty(streams, x.shape[1], c_out)
        kernels._graph_conv_kernel.fn[(2, 2, streams)](
            x, block.index, block.weight, block.gcn_w, block.gcn_bias, out, x.shape[1], x.shape[1], 3, joints, 0,
            C_IN=c_in, C_OUT=c_out, K=partitions, D=depth, DEPTHS=packed, PLANES=1, BLOCK_M=64, BLOCK_N=64, BLOCK_K=32,
            PIPELINED=pipelined)
        outputs.append(out)
    assert outputs[0].abs().max() > 0
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("tma_loads", "kernels"), [
    (True, {"_prepare_kernel", "_graph_conv_kernel", "_temporal_conv_tma_kernel", "_classify_kernel"}),
    (False, {"_prepare_kernel", "_graph_conv_kernel", "_temporal_conv_kernel", "_pool_kernel", "_classify_kernel"})])
def test_every_launch_asks_for_fused_multiply_adds(monkeypatch, reference_checkpoint, tma_loads, kernels):
    """Triton 3.10 stops fusing multiply-adds unless a launch asks for them: every kernel of a forward
    pass asks, so the kernels stay the ones every measurement used."""
    from triton.runtime.interpreter import InterpretedFunction

    launches = []

    def recording(self, *args, **kwargs):  # noqa: ANN001, ANN202
        launches.append((self.fn.__name__, kwargs.get("enable_fp_fusion")))
        return run(self, *args, **kwargs)

    run = InterpretedFunction.run
    monkeypatch.setattr(InterpretedFunction, "run", recording)
    model = KernelNetwork(load_checkpoint(reference_checkpoint()).model, tma_loads=tma_loads)
    with torch.no_grad():
        model(torch.rand(1, 3, 6, 33, 1))
    assert {name for name, _ in launches} == kernels
    assert {fused for _, fused in launches} == {True}


def test_fp8_temporal_convolutions_agree_with_fp32(monkeypatch, demo_models, real_windows):
    """Every temporal convolution multiplies fp8 operands (its input written in fp8 by the graph
    convolution, its weights K-major); probabilities within the issue's 1e-3 of fp32. The
    interpreter's fp32 -> fp8 conversion rounds less exactly than a GPU's (a value that rounds up to
    the next power of two gets the power below), so a GPU agrees more closely (tests/runtime/test_gpu.py)."""
    from stgcn_rt.kernels import network as kernel_network

    inputs = []

    def recording(*args, **kwargs):
        inputs.append(args[0].dtype)
        return temporal_conv(*args, **kwargs)

    temporal_conv = kernel_network.temporal_conv
    monkeypatch.setattr(kernel_network, "temporal_conv", recording)
    loaded = load_checkpoint(demo_models[0])
    model = KernelNetwork(loaded.model, tma_loads=True, fp8_temporal=True)
    model.set_block_dtype(torch.float16)
    w8 = model.blocks[4].tcn_w8
    assert w8.dtype == torch.float8_e4m3fn and w8.shape == (2, 9, 128, 128) and w8.is_contiguous()
    x = torch.from_numpy(real_windows[:1, :, 40:80])
    with torch.no_grad():
        probs, ref = torch.softmax(model(x), 1), torch.softmax(loaded.model(x), 1)
    assert inputs == [torch.float8_e4m3fn] * len(model.blocks)
    assert (probs - ref).abs().max() <= 1e-3


def test_fp8_scales_fold_into_the_block(demo_models):
    """A block whose temporal-convolution inputs reach about 16,000 (far beyond e4m3's 448) gets them
    scaled down by a power of two in its graph convolution's weights and bias, and scaled back with
    the weights' per-channel scale in the epilogue: the dequantized weights are the block's own."""
    loaded = amplified(load_checkpoint(demo_models[0]), 2, 2.0 ** 16)
    model = KernelNetwork(loaded.model, tma_loads=True, fp8_temporal=True)
    reference = KernelNetwork(loaded.model, tma_loads=True)
    block, amplified_plain = model.blocks[2], reference.blocks[2]
    scale = block.gcn_bias[:, 0, 0] / amplified_plain.gcn_bias[:, 0, 0]
    assert (scale <= 2.0 ** -9).all() and torch.equal(scale, torch.exp2(torch.round(torch.log2(scale))))
    torch.testing.assert_close(block.gcn_w, amplified_plain.gcn_w * scale[:, None, None, None], rtol=0, atol=0)
    assert torch.equal(model.blocks[1].gcn_w, reference.blocks[1].gcn_w)  # inputs within range: unscaled
    weights = block.tcn_w8.float().transpose(2, 3) * (block.tcn_scale * scale[:, None])[:, None, None, :]
    per_channel = amplified_plain.tcn_w.abs().amax(dim=(1, 2), keepdim=True)
    assert ((weights - amplified_plain.tcn_w).abs() <= per_channel / 16).all()  # e4m3: 3 mantissa bits


def test_fp8_input_scale_keeps_three_factors_of_two_below_448():
    from stgcn_rt.kernels.network import fp8_input_scale

    scale = fp8_input_scale(torch.tensor([16.6, 0.0, 56.0, 1000.0]))
    assert scale.tolist() == [1.0, 1.0, 1.0, 2.0 ** -5]


def test_fp8_needs_the_tensor_memory_accelerator(reference_checkpoint):
    loaded = load_checkpoint(reference_checkpoint())
    with pytest.raises(StgcnError, match="fp8 temporal convolutions need the tensor memory accelerator's loads"):
        KernelNetwork(loaded.model, tma_loads=False, fp8_temporal=True)
