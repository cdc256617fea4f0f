"""The first block's graph convolution computed from the windows in one kernel (``fuse_input``,
:func:`~stgcn_rt.model.triton_kernels.input_graph_conv`) against the two kernels it replaces (the
input kernel, then block 0's tuned graph convolution), each form timed alone inside a CUDA graph
(Triton's ``do_bench_cudagraph``) per batch size; the fused kernel for several frames per program
and warps. Demo model, fp16 blocks, fp8 rows where ``--fp8``. Writes
<out>/input-graph-conv-<gpu>-<date>.json, as profile_kernels.py writes its report.

    python scripts/probe_input_graph_conv.py [--batch 1,4,16,64,512] [--frames 1,2,4,8] [--warps 2,4,8] [--fp8]
        [--out .]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import triton
from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script
from triton.testing import do_bench_cudagraph

from stgcn_rt.model import triton_kernels as kernels
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier


def fused(net: torch.nn.Module, x: torch.Tensor, out: torch.Tensor, frames: int, warps: int) -> None:
    """One launch of the fused kernel with ``frames`` frames per program and ``warps`` warps."""
    first = net.blocks[0]
    n, c, t, v, m = x.shape
    streams, partitions, v_pad = net.input_mix.shape[:3]
    c_out = first.gcn_w.shape[-1]
    kernels._input_graph_conv_kernel[(triton.cdiv(n * m * t, frames), streams)](
        x, net.input_scale, net.input_shift, net.input_mix, first.gcn_w, first.gcn_bias, out, n * m * t, t, v, m,
        C=c, C_OUT=c_out, K=partitions, MOTION=kernels.MOTION_CODES[net.motion], FRAMES=frames, V_PAD=v_pad,
        C_PAD=16, N_PAD=triton.next_power_of_2(c_out), num_warps=warps, **kernels._COMPILE_OPTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", default="1,4,16,64,512", help="batch sizes, comma-separated")
    parser.add_argument("--frames", default="1,2,4,8", help="frames per program of the fused kernel")
    parser.add_argument("--warps", default="2,4,8", help="warps of the fused kernel")
    parser.add_argument("--fp8", action="store_true", help="the rows in fp8, for fp8 temporal convolutions")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    net = TorchClassifier(loaded, device="cuda", precision="fp16", triton_kernels=True, fp8_temporal=args.fp8).model
    first = net.blocks[0]
    dtype = first.mixed_dtype(net.tma_loads)
    results = []
    with torch.inference_mode():
        for batch in (int(b) for b in args.batch.split(",")):
            x = torch.rand(batch, 3, 150, 33, 1, device="cuda")
            y = kernels.prepare_input(x, net.input_scale, net.input_shift, net.motion, net.block_dtype)
            reference = first.graph(y, 150, 33, net.tma_loads)

            def separate(x: torch.Tensor = x) -> None:
                first.graph(kernels.prepare_input(x, net.input_scale, net.input_shift, net.motion, net.block_dtype),
                            150, 33, net.tma_loads)
            row = {"batch": batch, "separate_us": round(do_bench_cudagraph(separate, rep=50) * 1000, 2), "fused_us": {}}
            out = torch.empty_like(reference)
            for frames in (int(f) for f in args.frames.split(",")):
                for warps in (int(w) for w in args.warps.split(",")):
                    fused(net, x, out, frames, warps)
                    difference = (out.float() - reference.float()).abs().max().item()
                    us = do_bench_cudagraph(lambda x=x, out=out, frames=frames, warps=warps:
                                            fused(net, x, out, frames, warps), rep=50) * 1000
                    row["fused_us"][f"{frames} frames, {warps} warps"] = round(us, 2)
                    row["max_difference"] = max(row.get("max_difference", 0.0), difference)
            print(row, flush=True)
            results.append(row)
    write_gpu_report("input-graph-conv", "python scripts/probe_input_graph_conv.py --batch " + args.batch +
                     f" --frames {args.frames} --warps {args.warps}" + (" --fp8" if args.fp8 else ""),
                     f"rows in {str(dtype).replace('torch.', '')}; separate_us: the input kernel then block 0's graph "
                     "convolution (its tuned tile); fused_us: the one kernel per frames per program and warps; "
                     "max_difference: the largest difference of a fused output from the separate one", results,
                     Path(args.out))


if __name__ == "__main__":
    main()
