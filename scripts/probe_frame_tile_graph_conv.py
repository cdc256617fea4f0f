"""Would the graph convolution be faster at batch 1 with frame-aligned row tiles and the joint mixing
as a tensor-core product? A probe kernel, not the project's: each program takes whole frames
(BLOCK_M // V of them, the rest of its rows masked), multiplies each partition's block-diagonal
(BLOCK_M x BLOCK_M) mixing matrix by its input rows, then by the partition's weights. Timed per
layer inside CUDA graphs (``do_bench_cudagraph``) against the project's graph-convolution kernel
(neighbour gathers), over a small tile sweep, with the largest difference between the two outputs.
Writes <out>/frame-tile-graph-conv-<gpu>-<date>.json, as profile_kernels.py writes its report.

    python scripts/probe_frame_tile_graph_conv.py [--out .]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import torch
import triton
import triton.language as tl
from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script
from triton.testing import do_bench_cudagraph

from stgcn_rt.model import triton_kernels as kernels
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

JOINTS = 33
# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages); 32-column tiles are left out: with 4 warps they made
# an illegal memory access on an H100 (Triton 3.6)
TILES = [t for t in itertools.product((64, 128), (64, 128), (32, 64), (4, 8), (1, 3))]


@triton.jit
def _frame_tile_kernel(x_ptr, mixing_ptr, w_ptr, bias_ptr, out_ptr, rows, V, C_IN: tl.constexpr,
                       C_OUT: tl.constexpr, K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    s = tl.program_id(2)
    frames = BLOCK_M // V
    local = tl.arange(0, BLOCK_M)
    offs_m = pid_m * frames * V + local
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    inside = offs_m < rows
    mask_m = (local < frames * V) & inside
    mask_n = offs_n < C_OUT
    x_stream = x_ptr + s.to(tl.int64) * rows * C_IN
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c0 in range(0, C_IN, BLOCK_K):
        mask_c = (c0 + offs_k) < C_IN
        x = tl.load(x_stream + offs_m.to(tl.int64)[:, None] * C_IN + (c0 + offs_k)[None, :],
                    mask=inside[:, None] & mask_c[None, :], other=0.0)
        for k in tl.static_range(K):
            mixing = tl.load(mixing_ptr + ((s * K + k) * BLOCK_M + local[:, None]) * BLOCK_M + local[None, :])
            w = tl.load(w_ptr + ((s * K + k) * C_IN + c0 + offs_k)[:, None] * C_OUT + offs_n[None, :],
                        mask=mask_c[:, None] & mask_n[None, :], other=0.0)
            acc = tl.dot(tl.dot(mixing, x).to(w.dtype), w, acc)
    bias = tl.load(bias_ptr + (s * V + local % V)[:, None] * C_OUT + offs_n[None, :],
                   mask=mask_m[:, None] & mask_n[None, :], other=0.0)
    tl.store(out_ptr + s.to(tl.int64) * rows * C_OUT + offs_m.to(tl.int64)[:, None] * C_OUT + offs_n[None, :],
             tl.maximum(acc + bias, 0.0).to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def block_diagonal(index: torch.Tensor, weight: torch.Tensor, depths: tuple[int, ...], size: int) -> torch.Tensor:
    """(S, K, size, size): row f V + w, column f V + v holds joint v's coefficient for joint w, per whole frame f."""
    streams, partitions = index.shape[:2]
    mixing = torch.zeros(streams, partitions, size, size)
    for s, k in itertools.product(range(streams), range(partitions)):
        for d, w, f in itertools.product(range(depths[k]), range(JOINTS), range(size // JOINTS)):
            mixing[s, k, f * JOINTS + w, f * JOINTS + int(index[s, k, d, w])] += float(weight[s, k, d, w])
    return mixing


def compare(block: torch.nn.Module, frames: int) -> dict:
    streams = block.index.shape[0]
    c_in, c_out = block.gcn_w.shape[-2:]
    rows = frames * JOINTS
    x = torch.randn(streams, rows, c_in, device="cuda", dtype=torch.float16)

    def project() -> torch.Tensor:
        return kernels.graph_conv(x, block.index, block.weight, block.depths, block.gcn_w, block.gcn_bias, JOINTS,
                                  frames)
    reference = project()
    best: tuple[float, tuple, float] | None = None
    for m, n, k, warps, stages in TILES:
        if n > c_out or k > c_in:
            continue
        mixing = block_diagonal(block.index.cpu(), block.weight.cpu(), block.depths, m).to("cuda", torch.float16)
        out = torch.empty(streams, rows, c_out, device="cuda", dtype=torch.float16)
        grid = (triton.cdiv(frames, m // JOINTS), triton.cdiv(c_out, n), streams)

        def probe(mixing: torch.Tensor = mixing, out: torch.Tensor = out, grid: tuple = grid, m: int = m, n: int = n,
                  k: int = k, warps: int = warps, stages: int = stages) -> None:
            _frame_tile_kernel[grid](x, mixing, block.gcn_w, block.gcn_bias, out, rows, JOINTS, C_IN=c_in,
                                     C_OUT=c_out, K=3, BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=warps,
                                     num_stages=stages)
        try:
            us = do_bench_cudagraph(probe, rep=30) * 1000
        except triton.runtime.errors.OutOfResources:
            continue
        if best is None or us < best[0]:
            best = (us, (m, n, k, warps, stages), float((out.float() - reference.float()).abs().max()))
    assert best is not None
    project_us = do_bench_cudagraph(project, rep=50) * 1000
    print(f"{c_in} -> {c_out}, {frames} frames: {project_us:.2f} vs {best[0]:.2f} us", flush=True)
    return {"in_channels": c_in, "out_channels": c_out, "frames": frames, "project_kernel_us": round(project_us, 2),
            "frame_tile_us": round(best[0], 2), "frame_tile": "{}x{}x{}, {} warps, {} stages".format(*best[1]),
            "max_abs_diff": best[2], "reference_max_abs": float(reference.float().abs().max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    net = TorchClassifier(loaded, device="cuda", precision="fp16", triton_kernels=True).model
    results, frames = [], 150
    with torch.inference_mode():
        for i, block in enumerate(net.blocks):
            if i > 0:  # the first block's three input channels stay with the gathers either way
                results.append({"block": i} | compare(block, frames))
            frames = (frames - 1) // block.stride + 1
    write_gpu_report("frame-tile-graph-conv", "python scripts/probe_frame_tile_graph_conv.py",
                     "batch 1, M=1, both streams: each graph convolution (frames in order, no planes) timed alone "
                     "inside a CUDA graph; the probe kernel's best tile of the sweep; max_abs_diff between the two "
                     "fp16 outputs", results, Path(args.out))


if __name__ == "__main__":
    main()
