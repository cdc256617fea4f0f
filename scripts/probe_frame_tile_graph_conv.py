"""Would the graph convolution be faster at batch 1 with frame-aligned row tiles and the joint mixing
as a tensor-core product? A probe kernel, not the project's: each program takes whole frames
(BLOCK_M // V of them, the rest of its rows masked), multiplies each partition's block-diagonal
(BLOCK_M x BLOCK_M) mixing matrix by its input rows, then by the partition's weights. Two forms
(``--forms``): ``pointer`` (session 12) loads the input rows and the mixing matrices with pointer
loads, the matrices again for every channel block; ``tma`` loads the input rows and the weights
through the tensor memory accelerator and each partition's mixing matrix once per program (the
partitions the outer loop, the channel blocks the inner, pipelined one; the mixed rows go from
registers straight into the product with the weights, as attention kernels reuse their scores).
Timed per layer inside CUDA graphs (``do_bench_cudagraph``) against the project's
graph-convolution kernel (neighbour gathers; timed with the frame layout its block's temporal
convolution reads), over a small tile sweep, with the largest difference between the two outputs
(frames in order). Writes <out>/frame-tile-graph-conv-<gpu>-<date>.json, as profile_kernels.py
writes its report.

    python scripts/probe_frame_tile_graph_conv.py [--forms pointer,tma] [--out .]
    TRITON_INTERPRET=1 python scripts/probe_frame_tile_graph_conv.py --check   # outputs only, on the CPU
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from pathlib import Path

import torch
import triton
import triton.language as tl
from profile_kernels import demo_triton_network, graph_us, write_gpu_report  # this folder's script, on the path
from triton.testing import do_bench_cudagraph

from stgcn_rt.model import triton_kernels as kernels

JOINTS = 33
# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages) per form; 32-column tiles are left out: with 4 warps they
# made an illegal memory access on an H100 (Triton 3.6)
TILES = {"pointer": list(itertools.product((64, 128), (64, 128), (32, 64), (4, 8), (1, 3))),
         "tma": [(64, 64, 32, 4, 3), (64, 64, 64, 4, 3), (64, 128, 64, 4, 3), (64, 64, 64, 4, 4), (64, 128, 32, 4, 4),
                 (128, 64, 32, 4, 3), (128, 64, 64, 4, 3), (128, 64, 64, 8, 3), (128, 128, 32, 8, 3),
                 (128, 128, 64, 8, 3)]}


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


@triton.jit
def _frame_tile_tma_kernel(x_desc, w_desc, mixing_ptr, bias_ptr, out_ptr, clip_rows, samples, V, C_IN: tl.constexpr,
                           C_OUT: tl.constexpr, K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    clip = tl.program_id(2)  # stream * samples + sample
    s = clip // samples
    frames = BLOCK_M // V
    local = tl.arange(0, BLOCK_M)
    r0 = pid_m * frames * V
    offs_m = (clip % samples) * clip_rows + r0 + local
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = (local < frames * V) & (r0 + local < clip_rows)
    mask_n = offs_n < C_OUT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in tl.static_range(K):
        mixing = tl.load(mixing_ptr + ((s * K + k) * BLOCK_M + local[:, None]) * BLOCK_M + local[None, :])
        for c0 in range(0, C_IN, BLOCK_K):
            x = x_desc.load([clip, r0, c0]).reshape(BLOCK_M, BLOCK_K)
            w = w_desc.load([(s * K + k) * C_IN + c0, pid_n * BLOCK_N])
            acc = tl.dot(tl.dot(mixing, x).to(w.dtype), w, acc)
    bias = tl.load(bias_ptr + (s * V + local % V)[:, None] * C_OUT + offs_n[None, :],
                   mask=mask_m[:, None] & mask_n[None, :], other=0.0)
    tl.store(out_ptr + (s * samples * clip_rows + offs_m).to(tl.int64)[:, None] * C_OUT + offs_n[None, :],
             tl.maximum(acc + bias, 0.0).to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def block_diagonal(index: torch.Tensor, weight: torch.Tensor, depths: tuple[int, ...], size: int) -> torch.Tensor:
    """(S, K, size, size): row f V + w, column f V + v holds joint v's coefficient for joint w, per whole frame f."""
    streams, partitions = index.shape[:2]
    mixing = torch.zeros(streams, partitions, size, size)
    for s, k in itertools.product(range(streams), range(partitions)):
        for d, w, f in itertools.product(range(depths[k]), range(JOINTS), range(size // JOINTS)):
            mixing[s, k, f * JOINTS + w, f * JOINTS + int(index[s, k, d, w])] += float(weight[s, k, d, w])
    return mixing


def launcher(form: str, block: torch.nn.Module, x: torch.Tensor, frames: int, out: torch.Tensor,
             tile: tuple[int, ...]) -> Callable[[], None]:
    """The probe kernel of ``form`` for ``block``'s graph convolution of ``x`` into ``out``, one tile."""
    m, n, k, warps, stages = tile
    streams, rows, c_in = x.shape
    c_out = out.shape[-1]
    mixing = block_diagonal(block.index.cpu(), block.weight.cpu(), block.depths, m).to(x.device, torch.float16)
    samples = rows // (frames * JOINTS)
    grid = (triton.cdiv(frames, m // JOINTS), triton.cdiv(c_out, n), streams * samples)
    options = {"C_IN": c_in, "C_OUT": c_out, "K": 3, "BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": warps,
               "num_stages": stages}
    if form == "pointer":
        def launch() -> None:
            _frame_tile_kernel[grid](x, mixing, block.gcn_w, block.gcn_bias, out, rows, JOINTS, **options)
        return launch
    from triton.tools.tensor_descriptor import TensorDescriptor

    x_desc = TensorDescriptor.from_tensor(x.view(streams * samples, frames * JOINTS, c_in), [1, m, k])
    w_desc = TensorDescriptor.from_tensor(block.gcn_w.view(-1, c_out), [k, n])

    def launch_tma() -> None:
        _frame_tile_tma_kernel[grid](x_desc, w_desc, mixing, block.gcn_bias, out, frames * JOINTS, samples, JOINTS,
                                     **options)
    return launch_tma


def compare(block: torch.nn.Module, frames: int, forms: list[str], tiles: dict[str, list[tuple[int, ...]]],
            time_it: bool = True) -> dict:
    streams = block.index.shape[0]
    c_in, c_out = block.gcn_w.shape[-2:]
    rows = frames * JOINTS
    device = block.gcn_w.device
    x = torch.randn(streams, rows, c_in, device=device, dtype=torch.float16)

    def project() -> torch.Tensor:
        return kernels.graph_conv(x, block.index, block.weight, block.depths, block.gcn_w, block.gcn_bias, JOINTS,
                                  frames)
    reference = project()
    result: dict = {"in_channels": c_in, "out_channels": c_out, "frames": frames,
                    "reference_max_abs": float(reference.float().abs().max())}
    if time_it:
        result["project_kernel_us"] = graph_us(project)
    for form in forms:
        name = "frame_tile" if form == "pointer" else f"frame_tile_{form}"
        best: tuple[float, tuple, float] | None = None
        for tile in tiles[form]:
            if tile[1] > c_out or tile[2] > c_in:
                continue
            out = torch.empty(streams, rows, c_out, device=device, dtype=torch.float16)
            launch = launcher(form, block, x, frames, out, tile)
            try:
                launch()
                us = do_bench_cudagraph(launch, rep=30) * 1000 if time_it else 0.0
            except triton.runtime.errors.OutOfResources:
                continue
            if best is None or us < best[0]:
                best = (us, tile, float((out.float() - reference.float()).abs().max()))
        assert best is not None
        if time_it:
            result[f"{name}_us"] = round(best[0], 2)
            result[name] = "{}x{}x{}, {} warps, {} stages".format(*best[1])
        result[f"{name}_max_abs_diff"] = best[2]
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forms", default="pointer,tma", help="probe kernels to time: pointer, tma")
    parser.add_argument("--check", action="store_true", help="only compare the outputs, on the CPU under "
                        "TRITON_INTERPRET=1, with few frames")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    forms = args.forms.split(",")
    net = demo_triton_network("cpu" if args.check else "cuda")
    results, frames = [], 150
    with torch.inference_mode():
        if args.check:
            for i in (1, 4, 7):
                compare(net.blocks[i], 6, forms, dict.fromkeys(forms, [(64, 64, 64, 4, 1)]), time_it=False)
            return
        for i, block in enumerate(net.blocks):
            if i > 0:  # the first block's three input channels stay with the gathers either way
                results.append({"block": i} | compare(block, frames, forms, TILES))
            frames = (frames - 1) // block.stride + 1
    write_gpu_report("frame-tile-graph-conv", f"python scripts/probe_frame_tile_graph_conv.py --forms {args.forms}",
                     "batch 1, M=1, both streams: each graph convolution (frames in order, no planes) timed alone "
                     "inside a CUDA graph; each probe form's best tile of the sweep; max_abs_diff between its and the "
                     "project kernel's fp16 outputs", results, Path(args.out))

if __name__ == "__main__":
    main()
