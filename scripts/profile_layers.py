"""Per-layer GPU time of the project's Triton kernels, each layer's kernel replayed inside a CUDA
graph (Triton's ``do_bench_cudagraph``), with the tile the autotuner chose; and a whole forward
pass replayed back to back. At batch 1 a kernel takes a few microseconds, less than its launch
from Python, so only timings inside CUDA graphs rank the kernels rather than the host. Writes
<out>/layer-profile-<gpu>-<date>.json, as profile_kernels.py writes its report.

    python scripts/profile_layers.py [--batch 1,512] [--fp8] [--out .]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script
from triton.testing import do_bench_cudagraph

from stgcn_rt.model import triton_kernels as kernels
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

PASSES = 1000


def _tile(tuner) -> str:  # noqa: ANN001 - a Triton Autotuner
    config = tuner.best_config
    kw = config.kwargs
    loop = " pipelined" if kw.get("PIPELINED") else ""
    size = f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']}"
    return f"{size}, {config.num_warps} warps, {config.num_stages} stages{loop}"


def layer_times(net: torch.nn.Module, batch: int) -> dict:
    """Microseconds per layer kernel and per whole pass for ``batch`` windows of one person."""
    x = torch.rand(batch, 3, 150, 33, 1, device="cuda")
    y = kernels.prepare_input(x, net.input_scale, net.input_shift, net.motion, net.block_dtype)
    frames, joints, layers = 150, 33, []
    with torch.inference_mode():
        for i, block in enumerate(net.blocks):
            def graph(block=block, y=y, frames=frames):  # noqa: ANN202
                return block.graph(y, frames, joints, net.tma_loads)
            mixed = graph()

            tma = block.takes_tma_loads(net.tma_loads)
            pool = tma and i == len(net.blocks) - 1  # as the forward pass runs it: row-group sums, not rows

            def temporal(block=block, mixed=mixed, y=y, frames=frames, pool=pool):  # noqa: ANN202
                return block.temporal(mixed, y, frames, joints, net.tma_loads, pool)
            out = block.temporal(mixed, y, frames, joints, net.tma_loads)
            for kind, run, tuner in (("graph", graph, kernels._graph_conv_kernel),
                                     ("temporal", temporal, kernels._temporal_conv_tma_kernel if tma
                                      else kernels._temporal_conv_kernel)):
                us = do_bench_cudagraph(run, rep=50) * 1000
                run()  # the tuner's best_config is the last launch's
                layers.append({"block": i, "kernel": kind, "in_channels": (y if kind == "graph" else mixed).shape[-1],
                               "out_channels": out.shape[-1], "rows": (y if kind == "graph" else out).shape[1],
                               "us": round(us, 2), "tile": _tile(tuner),
                               "loads": "tma" if kind == "temporal" and tma else "pointer",
                               "pooled": kind == "temporal" and pool})
                print(f"batch {batch} block {i} {kind}: {us:.1f} us ({layers[-1]['tile']})", flush=True)
            y, frames = out, (frames - 1) // block.stride + 1
        pass_graph, stream = torch.cuda.CUDAGraph(), torch.cuda.Stream()
        with torch.cuda.stream(stream):
            net(x)
            torch.cuda.synchronize()
            with torch.cuda.graph(pass_graph):
                net(x)
        for _ in range(50):
            pass_graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(PASSES):
            pass_graph.replay()
        end.record()
        torch.cuda.synchronize()
    per_pass = start.elapsed_time(end) * 1000 / PASSES
    print(f"batch {batch}: {per_pass:.1f} us per pass back to back", flush=True)
    return {"batch": batch, "pass_us": round(per_pass, 1), "layers_us": round(sum(r["us"] for r in layers), 1),
            "layers": layers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", default="1,512", help="batch sizes, comma-separated")
    parser.add_argument("--fp8", action="store_true", help="temporal convolutions on fp8 operands")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    classifier = TorchClassifier(loaded, device="cuda", precision="fp16", triton_kernels=True, fp8_temporal=args.fp8)
    results = [layer_times(classifier.model, int(b)) for b in args.batch.split(",")]
    write_gpu_report("layer-profile" + ("-fp8" if args.fp8 else ""),
                     "python scripts/profile_layers.py --batch " + args.batch + (" --fp8" if args.fp8 else ""),
                     "each layer's kernel timed alone inside a CUDA graph (do_bench_cudagraph); pass_us: the whole "
                     "forward pass (22 kernels with TMA loads, 23 without) replayed back to back, input on the GPU",
                     results, Path(args.out))


if __name__ == "__main__":
    main()
