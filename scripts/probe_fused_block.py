"""A block's graph and temporal convolution in one launch, the temporal tiles starting as soon as
their frames' graph tiles are done: does the dataflow design of docs/performance.md gain at batch 1
what running the two at once on independent inputs gains (scripts/probe_layer_overlap.py)?

One kernel does both convolutions of a stride-1 block: each program takes the next ticket of a
schedule (an atomic counter, so tickets go out in the order programs start), and the schedule puts
every temporal tile after the graph tiles of the frames its nine taps read (plus ``lag`` more row
tiles of graph work). A graph tile stores its rows and counts itself done for its row tile
(release); a temporal tile waits until every graph tile of its frames is counted (acquire), then
runs the project's TMA main loop and epilogue. No program waits for a later ticket, so every
program it waits for has started: no deadlock, whatever the number of SMs. The last program to
finish zeroes the counters for the next launch (no memset in the CUDA graph).

A graph tile is computed as ``_graph_conv_kernel`` computes it (frames in order, the pipelined
channel loop). Timed inside CUDA graphs (``do_bench_cudagraph``): the project's two kernels with
the tiles the fused kernel uses, the same autotuned, the fused kernel per lag and pipeline depth,
and three forms that time its parts (temporal tiles not waiting; nor tickets or a finish count;
waiting programs sleeping between looks); the fused output against the two kernels' with the same
tiles (identical to the bit over 50 launches, or the probe fails). Per block shape at batch 1 (a
64- and a 128-channel block), both streams in each launch as the forward pass runs them. Writes
<out>/fused-block-<gpu>-<date>.json.

    python scripts/probe_fused_block.py [--lags 0,2,6,1000000] [--out .]
    TRITON_INTERPRET=1 python scripts/probe_fused_block.py --check   # agreement on the CPU, no timing
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import triton
import triton.language as tl
from profile_kernels import demo_triton_network, graph_us, write_gpu_report  # this folder's script, on the path

from stgcn_rt.model import triton_kernels as kernels

JOINTS = 33
BLOCKS = {1: 150, 5: 75}  # a 64- and a 128-channel stride-1 block, with their frames
# the autotuner's tiles for these layers at batch 1 (layer-profile-h100-2026-11-26-s11-pool.json):
# graph (BLOCK_M, BLOCK_N, BLOCK_K), temporal (BLOCK_M, BLOCK_N, BLOCK_K); 4 warps each
TILES = {64: ((64, 64, 32), (64, 64, 64)), 128: ((64, 128, 32), (64, 128, 64))}
GRAPH_TILE, TEMPORAL_TILE = 0, 1


@triton.jit
def _fence_async_proxy(x):
    """Order this thread's view of global memory before the tensor memory accelerator's next loads
    (the graph tiles' rows were written by ordinary stores of other SMs)."""
    return tl.inline_asm_elementwise("fence.proxy.async.global; mov.u32 $0, $1;", "=r,r", [x], dtype=tl.int32,
                                     is_pure=False, pack=1)


@triton.jit
def _sleep(nanoseconds):
    return tl.inline_asm_elementwise("nanosleep.u32 $1; mov.u32 $0, $1;", "=r,r", [nanoseconds], dtype=tl.int32,
                                     is_pure=False, pack=1)


@triton.jit
def _fused_block_kernel(x_ptr, index_ptr, weight_ptr, gw_ptr, gbias_ptr, y_ptr, y_desc, w_desc, tbias_ptr, out_ptr,
                        schedule_ptr, counters_ptr, counter_count, rows, T, V, tickets, graph_row_tiles,
                        COUNTERS: tl.constexpr, SYNC: tl.constexpr, BACKOFF: tl.constexpr,
                        C: tl.constexpr, K: tl.constexpr, D: tl.constexpr, DEPTHS: tl.constexpr,
                        TAPS: tl.constexpr, RESIDUAL: tl.constexpr, INTERPRETED: tl.constexpr,
                        GM: tl.constexpr, GN: tl.constexpr, GK: tl.constexpr,
                        TM: tl.constexpr, TN: tl.constexpr, TK: tl.constexpr):
    """x (S, rows, C) -> y = graph convolution -> out = temporal convolution (+ x, RESIDUAL 1); one
    clip per stream. counters: [ticket, finished, done per (stream, graph row tile)...], COUNTERS a
    power of two at least their count. SYNC 2: as designed; 1: temporal tiles do not wait for their
    frames; 0: not even tickets or a count of finished programs (the program id as the ticket): 1
    and 0 give wrong outputs, they time what the rest costs. BACKOFF: nanoseconds a waiting program
    sleeps between two looks at a count (0: none)."""
    ticket = tl.atomic_add(counters_ptr, 1) if SYNC > 0 else tl.program_id(0)
    entry = schedule_ptr + ticket * 4
    kind = tl.load(entry)
    s = tl.load(entry + 1)
    pid_m = tl.load(entry + 2)
    pid_n = tl.load(entry + 3)
    graph_tiles_n: tl.constexpr = (C + GN - 1) // GN
    if kind == 0:
        offs_m = pid_m * GM + tl.arange(0, GM)
        offs_n = pid_n * GN + tl.arange(0, GN)
        mask_m = offs_m < rows
        mask_n = offs_n < C
        joint = offs_m % V
        frame_row = offs_m - joint
        x_stream = x_ptr + s.to(tl.int64) * rows * C
        acc = tl.zeros((GM, GN), dtype=tl.float32)
        for c0 in range(0, C, GK):
            acc = kernels._mix_and_multiply(acc, x_stream, index_ptr, weight_ptr, gw_ptr, s, joint, frame_row, mask_m,
                                            offs_n, mask_n, c0, V, C, C, K, D, DEPTHS, GM, GK)
        bias = tl.load(gbias_ptr + (s * V + joint)[:, None] * C + offs_n[None, :],
                       mask=mask_m[:, None] & mask_n[None, :], other=0.0)
        y = tl.maximum(acc + bias, 0.0)
        kernels._store_rows(y, y_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C)
        tl.debug_barrier()  # every thread's rows stored before the count that releases them
        tl.atomic_add(counters_ptr + 2 + s * graph_row_tiles + pid_m, 1, sem="release", scope="gpu")
    else:
        r0 = pid_m * TM
        first = tl.maximum(r0 // V - (TAPS - 1) // 2, 0)  # the frames the taps read
        last = tl.minimum((tl.minimum(r0 + TM, rows) - 1) // V + (TAPS - 1) // 2, T - 1)
        for g in range(first * V // GM, (((last + 1) * V - 1) // GM + 1) if SYNC == 2 else 0):
            done = tl.atomic_add(counters_ptr + 2 + s * graph_row_tiles + g, 0, sem="acquire", scope="gpu")
            while done < graph_tiles_n:
                if BACKOFF > 0:
                    _sleep(tl.full([], BACKOFF, tl.int32))
                done = tl.atomic_add(counters_ptr + 2 + s * graph_row_tiles + g, 0, sem="acquire", scope="gpu")
        tl.debug_barrier()
        if not INTERPRETED:
            _fence_async_proxy(pid_m)
        clip_row = r0 + tl.arange(0, TM)
        offs_n = pid_n * TN + tl.arange(0, TN)
        mask_m, mask_n = clip_row < rows, offs_n < C
        identity = kernels._identity_residual(x_ptr, s, clip_row, mask_m, offs_n, mask_n, rows, C) \
            if RESIDUAL == 1 else 0.0
        acc = kernels._tma_taps_product(y_desc, w_desc, s, s, r0, pid_n * TN, V, C, TAPS, 1, TM, TN, TK)
        y = kernels._temporal_result(acc, identity, tbias_ptr, x_ptr, x_ptr, s, mask_m, offs_n, mask_n, clip_row,
                                     rows, C, C, RESIDUAL, TK)
        kernels._store_rows(y, out_ptr, s, clip_row, mask_m, offs_n, mask_n, rows, C)
    if SYNC > 0:
        tl.debug_barrier()
        finished = tl.atomic_add(counters_ptr + 1, 1, sem="acq_rel", scope="gpu")
        if finished == tickets - 1:  # the last program: every other has stopped reading the counters
            offs = tl.arange(0, COUNTERS)
            tl.store(counters_ptr + offs, tl.zeros_like(offs), mask=offs < counter_count)


def schedule(frames: int, channels: int, streams: int, lag: int) -> torch.Tensor:
    """(tickets, 4) int32 rows (kind, stream, row tile, column tile): graph tiles by row tile, each
    temporal row tile as soon as the graph row tiles of its taps' frames (and ``lag`` more) are in."""
    (gm, gn, _), (tm, tn, _) = TILES[channels]
    rows = frames * JOINTS
    graph_rows, temporal_rows = triton.cdiv(rows, gm), triton.cdiv(rows, tm)
    entries: list[tuple[int, int, int, int]] = []
    issued = 0
    for j in range(temporal_rows):
        last_frame = min((min(j * tm + tm, rows) - 1) // JOINTS + 4, frames - 1)
        needed = min(((last_frame + 1) * JOINTS - 1) // gm + lag, graph_rows - 1)
        for g in range(issued, needed + 1):
            entries += [(GRAPH_TILE, s, g, n) for s in range(streams) for n in range(triton.cdiv(channels, gn))]
        issued = max(issued, needed + 1)
        entries += [(TEMPORAL_TILE, s, j, n) for s in range(streams) for n in range(triton.cdiv(channels, tn))]
    return torch.tensor(entries, dtype=torch.int32)


class FusedBlock:
    """The fused kernel's launch for one block and frame count, its buffers made once (as a CUDA
    graph needs them)."""

    def __init__(self, block: torch.nn.Module, x: torch.Tensor, frames: int, lag: int, stages: int,
                 sync: int = 2, backoff: int = 0) -> None:
        from triton.tools.tensor_descriptor import TensorDescriptor

        self.block, self.x, self.frames, self.stages, self.sync, self.backoff = block, x, frames, stages, sync, backoff
        streams, rows, channels = x.shape
        self.channels = channels
        self.plan = schedule(frames, channels, streams, lag).to(x.device)
        (gm, _, _), (tm, tn, tk) = TILES[channels]
        self.graph_row_tiles = triton.cdiv(rows, gm)
        self.counters = torch.zeros(2 + streams * self.graph_row_tiles, dtype=torch.int32, device=x.device)
        self.y = torch.empty_like(x)
        self.out = torch.empty_like(x)
        self.y_desc = TensorDescriptor.from_tensor(self.y, [1, tm, tk])
        self.w_desc = TensorDescriptor.from_tensor(block.tcn_w.view(-1, channels), [tk, tn])
        self.depths, self.residual = kernels.pack_depths(block.depths), kernels.RESIDUAL_CODES[block.residual_kind]

    def __call__(self) -> torch.Tensor:
        b = self.block
        (gm, gn, gk), (tm, tn, tk) = TILES[self.channels]
        _fused_block_kernel[(len(self.plan),)](
            self.x, b.index, b.weight, b.gcn_w, b.gcn_bias, self.y, self.y_desc, self.w_desc, b.tcn_bias, self.out,
            self.plan, self.counters, len(self.counters), self.x.shape[1], self.frames, JOINTS, len(self.plan),
            self.graph_row_tiles, COUNTERS=triton.next_power_of_2(len(self.counters)), SYNC=self.sync,
            BACKOFF=self.backoff, C=self.channels, K=b.index.shape[1], D=b.index.shape[2], DEPTHS=self.depths,
            TAPS=b.tcn_w.shape[1], RESIDUAL=self.residual, INTERPRETED=kernels.INTERPRETED,
            GM=gm, GN=gn, GK=gk, TM=tm, TN=tn, TK=tk, num_warps=4, num_stages=self.stages)
        return self.out


def fixed_tile_pair(block: torch.nn.Module, x: torch.Tensor, frames: int, stages: tuple[int, int]
                    ) -> Callable[[], torch.Tensor]:
    """The project's two kernels with the fused kernel's tiles (no autotuning)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    streams, rows, channels = x.shape
    (gm, gn, gk), (tm, tn, tk) = TILES[channels]
    y = torch.empty_like(x)
    out = torch.empty_like(x)
    y_desc = TensorDescriptor.from_tensor(y.view(streams, rows, channels), [1, tm, tk])
    w_desc = TensorDescriptor.from_tensor(block.tcn_w.view(-1, channels), [tk, tn])
    depths = kernels.pack_depths(block.depths)
    residual = kernels.RESIDUAL_CODES[block.residual_kind]

    def run() -> torch.Tensor:
        kernels._graph_conv_kernel.fn[(triton.cdiv(rows, gm), triton.cdiv(channels, gn), streams)](
            x, block.index, block.weight, block.gcn_w, block.gcn_bias, y, rows, rows, frames, JOINTS,
            kernels.size_class(rows), C_IN=channels, C_OUT=channels, K=block.index.shape[1], D=block.index.shape[2],
            DEPTHS=depths, PLANES=1, BLOCK_M=gm, BLOCK_N=gn, BLOCK_K=gk, PIPELINED=True, num_warps=4,
            num_stages=stages[0])
        kernels._temporal_conv_tma_kernel.fn[(triton.cdiv(rows, tm), triton.cdiv(channels, tn), streams)](
            y_desc, w_desc, block.tcn_bias, x, x, out, rows, 1, frames, JOINTS, kernels.size_class(rows), C=channels,
            C_OUT=channels, C_RES=channels if residual else 0, TAPS=block.tcn_w.shape[1], STRIDE=1,
            RESIDUAL=residual, POOL_ROWS=0, BLOCK_M=tm, BLOCK_N=tn, BLOCK_K=tk, num_warps=4, num_stages=stages[1])
        return out

    return run


def measure(block: torch.nn.Module, frames: int, lags: list[int], check_only: bool) -> dict:
    streams, _, channels, _ = block.gcn_w.shape
    device = block.gcn_w.device
    x = torch.randn(streams, frames * JOINTS, channels, device=device).to(torch.float16)
    autotuned = block(x, frames, JOINTS, tma=True).clone()
    pair = fixed_tile_pair(block, x, frames, (3, 4))
    same_tiles = pair().clone()
    result: dict = {"channels": channels, "frames": frames, "pair_fixed_tiles_vs_autotuned_max_diff":
                    float((same_tiles.float() - autotuned.float()).abs().max())}
    fused = {(lag, stages): FusedBlock(block, x, frames, lag, stages)
             for lag in lags for stages in ((4,) if check_only else (3, 4))}
    for (lag, stages), run in fused.items():
        # repeated launches: a temporal tile that read its frames too early would differ in some of them;
        # every launch after the first runs on the counters the one before zeroed
        diff = max(float((run().float() - same_tiles.float()).abs().max()) for _ in range(2 if check_only else 50))
        result[f"fused_lag{lag}_stages{stages}_vs_pair_fixed_tiles_max_diff"] = diff
        if int(run.counters.abs().sum()) != 0:
            raise SystemExit(f"block of {channels} channels: the counters were not zeroed after a launch")
    if check_only:
        return result
    result["pair_autotuned_us"] = graph_us(lambda: block(x, frames, JOINTS, tma=True))
    result["pair_fixed_tiles_us"] = graph_us(pair)
    for (lag, stages), run in fused.items():
        result[f"fused_lag{lag}_stages{stages}_us"] = graph_us(run)
    best = min(v for k, v in result.items() if k.startswith("fused") and k.endswith("_us"))
    result["fused_no_waiting_lag0_stages3_us"] = graph_us(FusedBlock(block, x, frames, 0, 3, sync=1))
    result["fused_no_tickets_stages3_us"] = graph_us(FusedBlock(block, x, frames, 0, 3, sync=0))
    backoff = FusedBlock(block, x, frames, 0, 3, backoff=200)
    result["fused_lag0_stages3_backoff200ns_us"] = graph_us(backoff)
    result["fused_lag0_stages3_backoff200ns_vs_pair_fixed_tiles_max_diff"] = float(
        (backoff().float() - same_tiles.float()).abs().max())
    result["saving_vs_fixed_tiles_us"] = round(result["pair_fixed_tiles_us"] - best, 2)
    result["saving_vs_autotuned_us"] = round(result["pair_autotuned_us"] - best, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for the JSON")
    parser.add_argument("--lags", default="0,2,6,1000000",
                        help="extra graph row tiles issued before each temporal tile")
    parser.add_argument("--check", action="store_true", help="only compare the outputs (runs under TRITON_INTERPRET=1)")
    args = parser.parse_args()
    lags = [int(v) for v in args.lags.split(",")]
    device = "cpu" if kernels.INTERPRETED else "cuda"
    net = demo_triton_network(device)
    results = []
    with torch.inference_mode():
        for i, frames in BLOCKS.items():
            if args.check:
                frames = 12  # a short clip: the interpreter runs every program in Python
            results.append({"block": i} | measure(net.blocks[i], frames, lags[:1] if args.check else lags, args.check))
            print(results[-1], flush=True)
    bad = [r for r in results for k, v in r.items() if k.startswith("fused") and k.endswith("max_diff") and v != 0]
    if bad:
        raise SystemExit(f"the fused block disagrees with the project's kernels on the same tiles: {bad}")
    if not args.check:
        write_gpu_report("fused-block", f"python scripts/probe_fused_block.py --lags {args.lags}",
                         "batch 1, M=1, both streams: a stride-1 block's graph and temporal convolution in one "
                         "launch (ticketed schedule, temporal tiles waiting on per-row-tile counts of their frames' "
                         "graph tiles) against the project's two kernels with the same tiles and autotuned, each "
                         "captured in a CUDA graph; lag: extra graph row tiles scheduled before each temporal tile; "
                         "max_diff: fp16 outputs, the fused kernel's against the pair with its tiles (50 launches; "
                         "0 expected: the same code per tile), that pair's against the autotuned one; lag 1000000: "
                         "every graph tile before any temporal tile (the serial order in one launch); "
                         "fused_no_waiting: temporal tiles not waiting (wrong outputs), what the fused kernel costs "
                         "besides its waits; fused_no_tickets: nor tickets or a finish count (program id as the "
                         "ticket; wrong outputs), the one kernel's code alone; backoff200ns: waiting programs "
                         "sleep 200 ns between looks", results, Path(args.out))


if __name__ == "__main__":
    main()
