"""Would splitting the temporal convolution's taps over two or three programs pay at batch 1? At
batch 1 its time follows the operands it pulls from L2 (docs/performance.md: a BM x BN tile reads
9 C (BM + BN) values), and larger tiles read less but leave SMs idle; a tile split over P programs,
each running 9 / P of the taps, keeps the programs of small tiles with the traffic of large ones.

An emulation, not the project's kernel: each program runs the project's TMA main loop
(``_tma_taps_product``) over ceil(9 / P) taps with its own share of the weights and stores its
fp32 partial tile; the partial sums are not added, so a time here is a lower bound for a real split
(which also needs one program per tile to read the others' partial tiles, add them and run the
epilogue). With 2 parts each runs 5 taps (10 of 9: slightly more traffic than a real split).
Timed inside CUDA graphs (``do_bench_cudagraph``) per stride-1 layer shape at batch 1, both
streams, best tile of a small sweep, beside the project's temporal convolution (autotuned, with its
epilogue and identity residual). Writes <out>/split-taps-<gpu>-<date>.json.

    python scripts/probe_split_taps.py [--out .]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import triton
import triton.language as tl
from profile_kernels import graph_us, write_gpu_report  # this folder's script, on the path when run as a script
from triton.testing import do_bench_cudagraph
from triton.tools.tensor_descriptor import TensorDescriptor

from stgcn_rt.model import triton_kernels as kernels

JOINTS, STREAMS, TAPS = 33, 2, 9
LAYERS = [(64, 150), (128, 75), (256, 38)]  # (channels, frames) of the stride-1 temporal convolutions
TILES = [(64, 128, 64, 4, 4), (64, 64, 64, 4, 4), (128, 128, 64, 8, 3), (128, 128, 64, 8, 4), (128, 64, 64, 4, 4),
         (128, 256, 64, 8, 3)]


@triton.jit
def _partial_kernel(y_desc, w_desc, out_ptr, clip_rows, samples, V, C: tl.constexpr, C_OUT: tl.constexpr,
                    TAPS: tl.constexpr, PARTS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    z = tl.program_id(2)  # (stream x samples + sample) x PARTS + part
    clip = z // PARTS
    weights = (clip // samples) * PARTS + z % PARTS  # this part's own weights
    acc = kernels._tma_taps_product(y_desc, w_desc, clip, weights, pid_m * BLOCK_M, pid_n * BLOCK_N, V, C, TAPS, 1,
                                    BLOCK_M, BLOCK_N, BLOCK_K)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    tl.store(out_ptr + (z.to(tl.int64) * clip_rows + rows)[:, None] * C_OUT + offs_n[None, :], acc,
             mask=(rows < clip_rows)[:, None] & (offs_n < C_OUT)[None, :])


def partial_launcher(y: torch.Tensor, channels: int, frames: int, parts: int, tile: tuple[int, ...]
                     ) -> Callable[[], None]:
    m, n, k, warps, stages = tile
    taps = -(-TAPS // parts)
    w = torch.randn(STREAMS * parts * taps * channels, channels, device="cuda", dtype=torch.float16)
    clip_rows = frames * JOINTS
    y_desc = TensorDescriptor.from_tensor(y.view(STREAMS, clip_rows, channels), [1, m, k])
    w_desc = TensorDescriptor.from_tensor(w, [k, n])
    out = torch.empty(STREAMS * parts, clip_rows, channels, device="cuda", dtype=torch.float32)
    grid = (triton.cdiv(clip_rows, m), triton.cdiv(channels, n), STREAMS * parts)

    def launch() -> None:
        _partial_kernel[grid](y_desc, w_desc, out, clip_rows, 1, JOINTS, C=channels, C_OUT=channels, TAPS=taps,
                              PARTS=parts, BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=warps, num_stages=stages)
    return launch


def measure(channels: int, frames: int) -> dict:
    y = torch.randn(STREAMS, frames * JOINTS, channels, device="cuda", dtype=torch.float16)
    w = torch.randn(STREAMS, TAPS, channels, channels, device="cuda", dtype=torch.float16) * 0.05
    bias = torch.zeros(STREAMS, channels, device="cuda")

    def project() -> torch.Tensor:
        return kernels.temporal_conv(y, w, bias, frames, JOINTS, 1, residual=y, tma=True)
    project()
    result: dict = {"channels": channels, "frames": frames, "project_us": graph_us(project)}
    for parts in (1, 2, 3):
        best: tuple[float, tuple[int, ...]] | None = None
        for tile in TILES:
            if tile[1] > channels or tile[2] > channels:
                continue
            launch = partial_launcher(y, channels, frames, parts, tile)
            try:
                launch()
                us = do_bench_cudagraph(launch, rep=30) * 1000
            except triton.runtime.errors.OutOfResources:
                continue
            if best is None or us < best[0]:
                best = (us, tile)
        assert best is not None
        result[f"parts_{parts}_us"] = round(best[0], 2)
        result[f"parts_{parts}_tile"] = "{}x{}x{}, {} warps, {} stages".format(*best[1])
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    results = [measure(channels, frames) for channels, frames in LAYERS]
    write_gpu_report("split-taps", "python scripts/probe_split_taps.py",
                     "batch 1, M=1, both streams, stride-1 temporal convolutions: the project's kernel (autotuned, "
                     "epilogue and identity residual) against the emulated split (each program ceil(9 / parts) taps, "
                     "its fp32 partial tile stored, no sum and no epilogue: a lower bound), best tile of the sweep per "
                     "part count; parts 1 is the emulation's own unsplit form", results, Path(args.out))


if __name__ == "__main__":
    main()
