"""Time every layer shape of a forward pass over a wide grid of tiles, not only the autotuner's
candidates: how much a new candidate could win, per layer and per pass. It sweeps the pointer-load
kernels (the graph convolution writing its frames in order, the temporal convolution without
tensor-memory-accelerator loads); the TMA kernel's tiles are the autotuner's. Each (layer, tile) is
compiled first by parallel worker processes (the grid is over a thousand compilations), then timed
alone inside a CUDA graph (``do_bench_cudagraph``) in this process. Also times the floor of a
kernel inside a CUDA graph (a kernel that stores one value per program). Writes
<out>/tile-sweep-<gpu>-<date>.json.

    python scripts/sweep_tiles.py [--batch 1] [--workers 15] [--out .]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import time
from pathlib import Path
from typing import Any

import torch

from stgcn_rt.model import triton_kernels as kernels
from stgcn_rt.model.network import TEMPORAL_KERNEL, block_shapes

JOINTS, STREAMS, FRAMES = 33, 2, 150
DEPTHS = 1 + (4 << 4) + (1 << 8)  # MediaPipe 33, spatial partitions: 1, 4 and 1 neighbours
TEMPORAL_TILES = [(m, n, k, w, s) for m, n, k in itertools.product((32, 64, 128), (32, 64, 128), (32, 64, 128))
                  for w, s in ((4, 2), (4, 3), (4, 4), (4, 5), (8, 3), (8, 4))
                  if not (k == 128 and m == 128) and not (m == 128 and w == 4 and n == 128)]
GRAPH_TILES = [(m, n, k, w, s) for m, n, k in itertools.product((16, 32, 64, 128), (32, 64, 128), (16, 32, 64))
               for w, s in ((2, 1), (4, 1), (8, 1), (4, 3), (4, 4), (8, 3))
               if not (m == 128 and w < 4) and not (m == 16 and w == 8)]


def layers(batch: int) -> dict[str, dict[str, Any]]:
    """Each distinct layer of the MediaPipe two-stream model at ``batch`` windows of one person, with
    how many times a pass runs it."""
    found: dict[str, dict[str, Any]] = {}
    for b in block_shapes(frames=FRAMES):
        kind = kernels.RESIDUAL_CODES[b.residual]
        shapes = {f"graph {b.in_channels}->{b.out_channels} x{b.frames}": {
                      "kernel": "graph", "c_in": b.in_channels, "c_out": b.out_channels, "frames": b.frames,
                      "rows": batch * b.frames * JOINTS},
                  f"temporal {b.out_channels} x{b.frames} stride {b.stride} residual {kind}": {
                      "kernel": "temporal", "c": b.out_channels, "c_res": b.in_channels if b.residual == "conv" else 0,
                      "stride": b.stride, "residual": kind, "frames": b.frames, "rows": batch * b.out_frames * JOINTS,
                      "in_rows": batch * b.frames * JOINTS}}
        for name, shape in shapes.items():
            found.setdefault(name, {**shape, "per_pass": 0})["per_pass"] += 1
    return found


_made: dict[str, Any] = {}


def _launcher(name: str, layer: dict[str, Any], tile: tuple[int, ...]) -> Any:
    """A function that launches ``layer`` with ``tile`` on tensors made once per layer."""
    m, n, k, warps, stages = tile
    if name not in _made:
        _made[name] = _tensors(layer)
    args, constants = _made[name]
    width = layer["c_out"] if layer["kernel"] == "graph" else layer["c"]
    grid = ((layer["rows"] + m - 1) // m, (width + n - 1) // n, STREAMS)
    if layer["kernel"] == "graph":
        jit, extra = kernels._graph_conv_kernel.fn, {"PIPELINED": stages > 1}
    else:
        jit, extra = kernels._temporal_conv_kernel.fn, {}
    return lambda: jit[grid](*args, **constants, **extra, BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=warps,
                             num_stages=stages)


def _tensors(layer: dict[str, Any]) -> tuple[tuple, dict]:
    half, rows = dict(device="cuda", dtype=torch.float16), layer["rows"]
    if layer["kernel"] == "graph":
        c_in, c_out = layer["c_in"], layer["c_out"]
        args = (torch.randn(STREAMS, rows, c_in, **half),
                torch.randint(0, JOINTS, (STREAMS, 3, 4, JOINTS), device="cuda", dtype=torch.int32),
                torch.rand(STREAMS, 3, 4, JOINTS, device="cuda"), torch.randn(STREAMS, 3, c_in, c_out, **half) * 0.05,
                torch.randn(STREAMS, JOINTS, c_out, device="cuda"), torch.empty(STREAMS, rows, c_out, **half),
                rows, rows, layer["frames"], JOINTS, kernels.size_class(rows))
        return args, {"C_IN": c_in, "C_OUT": c_out, "K": 3, "D": 4, "DEPTHS": DEPTHS, "PLANES": 1}
    c, c_res, kind, in_rows = layer["c"], layer["c_res"], layer["residual"], layer["in_rows"]
    w = torch.randn(STREAMS, TEMPORAL_KERNEL, c, c, **half) * 0.05
    bias = torch.randn(STREAMS, c, device="cuda")
    residual = torch.randn(STREAMS, in_rows if kind == 2 else rows, c_res if kind == 2 else c, **half)
    res_w = torch.randn(STREAMS, c_res, c, **half) if kind == 2 else w
    frames = layer["frames"]
    args = (torch.randn(STREAMS, in_rows, c, **half), w, bias, residual, res_w,
            torch.empty(STREAMS, rows, c, **half), rows, in_rows, (frames - 1) // layer["stride"] + 1, frames, JOINTS,
            kernels.size_class(rows))
    return args, {"C": c, "C_OUT": c, "C_RES": c_res, "TAPS": TEMPORAL_KERNEL, "STRIDE": layer["stride"],
                  "RESIDUAL": kind}


def _compile(task: tuple[str, dict, tuple[int, ...]]) -> tuple[str, tuple[int, ...], str | None]:
    name, layer, tile = task
    try:
        _launcher(name, layer, tile)()
        torch.cuda.synchronize()
        return name, tile, None
    except Exception as error:  # noqa: BLE001 - a tile that does not fit this GPU is a result, not a failure
        return name, tile, type(error).__name__


def kernel_floor() -> float:
    """Microseconds per launch of a kernel that stores one value per program (160 programs), 20 in a CUDA graph."""
    import triton
    import triton.language as tl

    @triton.jit
    def store_one(ptr):
        tl.store(ptr + tl.program_id(0), 1.0)

    buffer = torch.zeros(160, device="cuda")
    store_one[(160,)](buffer)
    graph = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        for _ in range(20):
            store_one[(160,)](buffer)
    for _ in range(20):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(500):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1000 / 500 / 20


def main() -> None:
    from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script
    from triton.testing import do_bench_cudagraph

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="windows per pass")
    parser.add_argument("--workers", type=int, default=15, help="processes compiling tiles in parallel")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    shapes = layers(args.batch)
    grids = {name: TEMPORAL_TILES if layer["kernel"] == "temporal" else GRAPH_TILES for name, layer in shapes.items()}
    tasks = [(name, shapes[name], tile) for name in shapes for tile in grids[name]]
    failed, started = set(), time.time()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for done, (name, tile, error) in enumerate(pool.imap_unordered(_compile, tasks, chunksize=4), 1):
            if error:
                failed.add((name, tile))
            if done % 200 == 0:
                print(f"compiled {done} of {len(tasks)} ({time.time() - started:.0f} s)", flush=True)
    floor = kernel_floor()
    print(f"a kernel's floor inside a CUDA graph: {floor:.2f} us", flush=True)
    candidates = {"graph": {tuple(c) for c in kernels._GRAPH_SIZES},
                  "temporal": {tuple(c) for c in kernels._TEMPORAL_SIZES}}
    results = []
    for name, layer in shapes.items():
        timed = sorted((do_bench_cudagraph(_launcher(name, layer, tile), rep=5) * 1000, tile)
                       for tile in grids[name] if (name, tile) not in failed)
        among = min(us for us, tile in timed if tile in candidates[layer["kernel"]])
        results.append({"layer": name, **layer, "best_us": round(timed[0][0], 2), "best_tile": timed[0][1],
                        "best_candidate_us": round(among, 2), "fastest": [[round(u, 2), t] for u, t in timed[:8]],
                        "tiles_timed": len(timed), "tiles_failed": len(grids[name]) - len(timed)})
        print(f"{name}: {timed[0][0]:.2f} us {timed[0][1]} (best candidate {among:.2f})", flush=True)
    per_pass = {key: round(sum(r[key] * r["per_pass"] for r in results), 1) for key in ("best_us", "best_candidate_us")}
    print(f"block kernels per pass: {per_pass}", flush=True)
    write_gpu_report("tile-sweep", f"python scripts/sweep_tiles.py --batch {args.batch}",
                     "(BLOCK_M, BLOCK_N, BLOCK_K, warps, stages) per layer, each timed alone inside a CUDA graph, "
                     "random tensors of the layer's shape; best_candidate_us: the best of the autotuner's candidates; "
                     "kernel_floor_us: a kernel storing one value per program, 20 in a graph",
                     [{"batch": args.batch, "kernel_floor_us": round(floor, 2), "per_pass": per_pass,
                       "layers": results}], Path(args.out))


if __name__ == "__main__":
    main()
