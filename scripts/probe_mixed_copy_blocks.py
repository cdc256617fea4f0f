"""Would a block pair be faster at batch 1 if each graph convolution were a plain GEMM? A probe of
docs/performance.md's next design, not the project's kernels: the temporal convolution takes
frame-aligned row tiles (whole frames per program, the rest of its rows masked) and its epilogue
also writes the next block's three joint-mixed copies of its output (each partition's
block-diagonal mixing matrix times the output tile, a tensor-core product), so the next graph
convolution is one (rows, 3 C) x (3 C, C') product: the project's TMA temporal-convolution kernel
with one tap. Per pair of consecutive blocks, timed alone inside CUDA graphs
(``do_bench_cudagraph``): the project's temporal convolution and next graph convolution against the
probe's temporal convolution (best tile of a small sweep per form, :data:`FORMS`: frame tiles alone,
with the mixed copies, their mixing matrices loaded at three different points, or with the tile
stored four times for the stores' cost alone) and the one-tap GEMM. Checks the chain: the GEMM
on the mixed copies against the project's graph convolution of the same rows (both without their
bias: the GEMM's epilogue adds one bias per channel, the graph convolution's one per joint and
channel). Writes <out>/mixed-copy-blocks-<gpu>-<date>.json.

    python scripts/probe_mixed_copy_blocks.py [--batch 1] [--pairs 0,1,...,8] [--out .]
    TRITON_INTERPRET=1 python scripts/probe_mixed_copy_blocks.py --check   # the chain on the CPU, no timing
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import triton
import triton.language as tl
from probe_frame_tile_graph_conv import block_diagonal  # this folder's scripts, on the path when run as a script
from profile_kernels import demo_triton_network, graph_us, write_gpu_report

from stgcn_rt.model import triton_kernels as kernels

JOINTS = 33
# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages); BLOCK_M // 33 whole frames per program
TILES = [(64, 64, 64, 4, 4), (64, 128, 64, 4, 4), (128, 64, 64, 4, 4), (128, 128, 64, 8, 3), (64, 64, 64, 4, 3),
         (128, 64, 64, 8, 3)]


@triton.jit
def _mixing(mixing_ptr, s, k, local, BLOCK_M: tl.constexpr, K: tl.constexpr):
    return tl.load(mixing_ptr + ((s * K + k) * BLOCK_M + local[:, None]) * BLOCK_M + local[None, :])


@triton.jit
def _mixing_temporal_kernel(y_desc, w_desc, bias_ptr, res_ptr, res_w_ptr, mixing_ptr, out_ptr, mixed_ptr, clip_rows,
                            samples, T_IN, V, C: tl.constexpr, C_OUT: tl.constexpr, C_RES: tl.constexpr,
                            TAPS: tl.constexpr, STRIDE: tl.constexpr, RESIDUAL: tl.constexpr, K: tl.constexpr,
                            MIX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """The project's TMA temporal convolution on frame-aligned tiles. MIX > 0: the epilogue also
    stores partition k's mixed copy of the tile at columns k C_OUT.. of ``mixed_ptr`` (S, rows, 3
    C_OUT), its mixing matrix loaded 1: just before its product, 2: all three at the epilogue's
    start, 3: all three before the main loop; 4: the tile itself stored three times instead (the
    stores' cost alone)."""
    tl.static_assert(K == 3)
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    clip = tl.program_id(2)
    s = clip // samples
    sample = clip % samples
    tile_frames = BLOCK_M // V
    local = tl.arange(0, BLOCK_M)
    r0 = pid_m * tile_frames * V
    clip_row = r0 + local
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = sample * clip_rows + clip_row
    mask_m = (local < tile_frames * V) & (clip_row < clip_rows)
    mask_n = offs_n < C_OUT
    rows = samples * clip_rows
    if MIX == 3:
        m0 = _mixing(mixing_ptr, s, 0, local, BLOCK_M, K)
        m1 = _mixing(mixing_ptr, s, 1, local, BLOCK_M, K)
        m2 = _mixing(mixing_ptr, s, 2, local, BLOCK_M, K)
    identity = kernels._identity_residual(res_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C_OUT) \
        if RESIDUAL == 1 else 0.0
    acc = kernels._tma_taps_product(y_desc, w_desc, clip, s, r0, pid_n * BLOCK_N, V, C, TAPS, STRIDE, BLOCK_M,
                                    BLOCK_N, BLOCK_K)
    if MIX == 2:
        m0 = _mixing(mixing_ptr, s, 0, local, BLOCK_M, K)
        m1 = _mixing(mixing_ptr, s, 1, local, BLOCK_M, K)
        m2 = _mixing(mixing_ptr, s, 2, local, BLOCK_M, K)
    res_rows = (sample * T_IN + clip_row // V * STRIDE) * V + clip_row % V
    y = kernels._temporal_result(acc, identity, bias_ptr, res_ptr, res_w_ptr, s, mask_m, offs_n, mask_n, res_rows,
                                 samples * T_IN * V, C_OUT, C_RES, RESIDUAL, BLOCK_K)
    kernels._store_rows(y, out_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C_OUT)
    if MIX > 0:
        y16 = tl.where(mask_m[:, None], y, 0.0).to(tl.float16)
        mask = mask_m[:, None] & mask_n[None, :]
        dest = mixed_ptr + s.to(tl.int64) * rows * K * C_OUT + offs_m.to(tl.int64)[:, None] * K * C_OUT \
            + offs_n[None, :]
        if MIX == 1:
            for k in tl.static_range(K):
                tl.store(dest + k * C_OUT, tl.dot(_mixing(mixing_ptr, s, k, local, BLOCK_M, K), y16).to(tl.float16),
                         mask=mask)
        elif MIX == 4:
            for k in tl.static_range(K):
                tl.store(dest + k * C_OUT, y16, mask=mask)
        else:
            tl.store(dest, tl.dot(m0, y16).to(tl.float16), mask=mask)
            tl.store(dest + C_OUT, tl.dot(m1, y16).to(tl.float16), mask=mask)
            tl.store(dest + 2 * C_OUT, tl.dot(m2, y16).to(tl.float16), mask=mask)


#: the probe kernel's MIX forms, by their names in the report
FORMS = {"frame_tiles": 0, "mixed_copies_loaded_per_product": 1, "mixed_copies_loaded_in_epilogue": 2,
         "mixed_copies_prefetched": 3, "frame_tiles_stored_four_times": 4}


def mixing_temporal(block: torch.nn.Module, y: torch.Tensor, x: torch.Tensor, mixing: torch.Tensor, mix: int,
                    frames: int, tile: tuple[int, ...]) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A launcher of the probe kernel for ``block``'s temporal convolution of ``y`` (the graph
    convolution's output, in planes), residual from the block input ``x``; ``mixing`` (S, 3, m, m),
    ``mix`` the kernel's MIX form (:data:`FORMS`)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    m, n, k, warps, stages = tile
    streams, in_rows, channels = y.shape
    taps, c_out = block.tcn_w.shape[1], block.tcn_w.shape[-1]
    stride = block.stride
    planes = kernels.frame_planes(True, stride, channels, c_out)
    t_out = (frames - 1) // stride + 1
    samples = in_rows // (planes * triton.cdiv(frames, planes) * JOINTS)
    clip_rows = t_out * JOINTS
    partitions = mixing.shape[1]
    y_desc = TensorDescriptor.from_tensor(y.view(streams * samples * planes, -1, channels), [1, m, k])
    w_desc = TensorDescriptor.from_tensor(block.tcn_w.view(streams * taps * channels, c_out), [k, n])
    out = torch.empty(streams, samples * clip_rows, c_out, dtype=y.dtype, device=y.device)
    mixed = torch.empty(streams, samples * clip_rows, partitions * c_out, dtype=y.dtype, device=y.device)
    kind = kernels.RESIDUAL_CODES[block.residual_kind]
    res_w = block.res_w if block.res_w is not None else block.tcn_w
    c_res = x.shape[-1] if kind else 0
    grid = (triton.cdiv(t_out, m // JOINTS), triton.cdiv(c_out, n), streams * samples)

    def launch() -> tuple[torch.Tensor, torch.Tensor]:
        _mixing_temporal_kernel[grid](y_desc, w_desc, block.tcn_bias, x, res_w, mixing,
                                      out, mixed, clip_rows, samples, frames, JOINTS, C=channels, C_OUT=c_out,
                                      C_RES=c_res, TAPS=taps, STRIDE=stride, RESIDUAL=kind, K=partitions,
                                      MIX=mix, BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=warps,
                                      num_stages=stages)
        return out, mixed
    return launch


def gemm_graph_conv(following: torch.nn.Module, mixed: torch.Tensor, frames: int, bias: torch.Tensor) -> torch.Tensor:
    """The following block's graph convolution as one product over the mixed copies: the project's TMA
    temporal-convolution kernel with one tap, ``bias`` (S, C') per channel."""
    streams, partitions, c_in, c_out = following.gcn_w.shape
    weights = following.gcn_w.reshape(streams, 1, partitions * c_in, c_out)
    return kernels.temporal_conv(mixed, weights, bias, frames, JOINTS, 1, tma=True)


def compare_pair(block: torch.nn.Module, following: torch.nn.Module, frames: int, batch: int,
                 tiles: list[tuple[int, ...]], forms: list[str], time_it: bool) -> dict:
    """``block``'s temporal convolution and ``following``'s graph convolution, both ways."""
    streams, _, c_in, _ = block.gcn_w.shape
    c_out = block.tcn_w.shape[-1]
    device = block.tcn_w.device
    x = torch.randn(streams, batch * frames * JOINTS, c_in, device=device, dtype=torch.float16)
    y = block.graph(x, frames, JOINTS, tma=True)
    t_out = (frames - 1) // block.stride + 1
    following_c = following.gcn_w.shape[-1]
    zero_bias = torch.zeros(streams, following_c, device=device)

    def project_temporal() -> torch.Tensor:
        return block.temporal(y, x, frames, JOINTS, tma=True)
    rows = project_temporal()

    def project_graph() -> torch.Tensor:
        return following.graph(rows, t_out, JOINTS, tma=True)
    without_bias = kernels.graph_conv(rows, following.index, following.weight, following.depths, following.gcn_w,
                                      torch.zeros_like(following.gcn_bias), JOINTS, t_out)
    result: dict = {"in_channels": c_in, "out_channels": c_out, "next_out_channels": following_c, "frames": frames,
                    "stride": block.stride, "batch": batch}
    best: dict[str, tuple[float, tuple[int, ...]]] = {}
    for tile in tiles:
        m, n, k = tile[:3]
        if n > c_out or k > block.tcn_w.shape[-2]:
            continue
        mixing = block_diagonal(following.index.cpu(), following.weight.cpu(), following.depths, m) \
            .to(device, torch.float16)
        for name in forms:
            mix = FORMS[name]
            launch = mixing_temporal(block, y, x, mixing, mix, frames, tile)
            try:
                out, mixed = launch()
            except (triton.runtime.errors.OutOfResources, triton.CompilationError) as exc:
                print(f"  tile {tile} {name}: {type(exc).__name__}", flush=True)
                continue
            result.setdefault("max_abs_diff_rows", 0.0)
            result["max_abs_diff_rows"] = max(result["max_abs_diff_rows"],
                                              float((out.float() - rows.float()).abs().max()))
            if mix in (1, 2, 3):
                chained = gemm_graph_conv(following, mixed, t_out, zero_bias)
                result["max_abs_diff_chain"] = max(result.get("max_abs_diff_chain", 0.0),
                                                   float((chained.float() - without_bias.float()).abs().max()))
            if time_it:
                us = triton.testing.do_bench_cudagraph(launch, rep=30) * 1000
                if name not in best or us < best[name][0]:
                    best[name] = (us, tile)
    result["reference_max_abs"] = float(without_bias.float().abs().max())
    if time_it:
        _, mixed = mixing_temporal(block, y, x, block_diagonal(following.index.cpu(), following.weight.cpu(),
                                                               following.depths, 64).to(device, torch.float16),
                                   1, frames, (64, 64, 64, 4, 4))()
        result |= {"project_temporal_us": _us(project_temporal), "project_next_graph_us": _us(project_graph),
                   "next_graph_as_gemm_us": _us(lambda: gemm_graph_conv(following, mixed, t_out, zero_bias))}
        for name, (us, tile) in best.items():
            result[f"{name}_us"] = round(us, 2)
            result[f"{name}_tile"] = "{}x{}x{}, {} warps, {} stages".format(*tile)
        mixing_us = min(result[f"{name}_us"] for name in forms if FORMS[name] in (1, 2, 3) and f"{name}_us" in result)
        result["saving_us"] = round(result["project_temporal_us"] + result["project_next_graph_us"] - mixing_us
                                    - result["next_graph_as_gemm_us"], 2)
    return result


def _us(fn: Callable[[], object]) -> float:
    fn()  # autotune outside the graph
    return graph_us(fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="windows per pass (M=1)")
    parser.add_argument("--pairs", default="0,1,2,3,4,5,6,7,8",
                        help="the pairs to measure, by the index of their first block (0-8)")
    parser.add_argument("--forms", default=",".join(FORMS), help="the probe kernel's forms to time, of "
                        + ", ".join(FORMS))
    parser.add_argument("--check", action="store_true", help="only check the chain, on the CPU under "
                        "TRITON_INTERPRET=1, for three pairs of blocks (one strided) with few frames")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    net = demo_triton_network("cpu" if args.check else "cuda")
    results, frames = [], 150
    with torch.inference_mode():
        if args.check:
            for pair in ((0, 1), (3, 4), (4, 5)):
                block, following = net.blocks[pair[0]], net.blocks[pair[1]]
                print(pair, compare_pair(block, following, 6, 1, [(64, 64, 64, 4, 1)], list(FORMS), time_it=False))
            return
        pairs, forms = {int(p) for p in args.pairs.split(",")}, args.forms.split(",")
        for i, (block, following) in enumerate(zip(net.blocks[:-1], net.blocks[1:], strict=True)):
            if i in pairs:
                measured = compare_pair(block, following, frames, args.batch, TILES, forms, time_it=True)
                results.append({"pair": i} | measured)
                print(results[-1], flush=True)
                write_report(results, args, Path(args.out))  # a run cut short keeps what it measured
            frames = (frames - 1) // block.stride + 1  # after each pair: a run cut short keeps what it measured


def write_report(results: list[dict], args: argparse.Namespace, out: Path) -> None:
    total = sum(r["saving_us"] for r in results)
    command = (f"python scripts/probe_mixed_copy_blocks.py --batch {args.batch} --pairs {args.pairs} "
               f"--forms {args.forms}")
    write_gpu_report("mixed-copy-blocks", command,
                     f"batch {args.batch}, M=1, both streams; per pair of consecutive blocks: the project's temporal "
                     "convolution and the next graph convolution, each timed alone inside a CUDA graph, against the "
                     "probe's frame-tile temporal convolution (without / with the mixed copies, best tile of the "
                     "sweep) and the next graph convolution as a one-tap GEMM (bias per channel); saving_us: project "
                     "pair minus probe pair; max_abs_diff_chain: the GEMM on the mixed copies against the project's "
                     f"graph convolution, both without bias. Pairs measured: {len(results)}; sum of their "
                     f"savings: {total:.1f} us", results, out)

if __name__ == "__main__":
    main()
