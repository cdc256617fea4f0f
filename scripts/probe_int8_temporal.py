"""Would int8 operands speed up the temporal convolutions on the GPU? At batch 1 their time follows
the operands they pull from L2 (docs/performance.md), and int8 halves those bytes against fp16
(and Hopper's tensor cores multiply int8 at twice the fp16 rate).

Times ``temporal_conv`` with tensor-memory-accelerator loads per layer shape of the network (both
streams, each block's residual), fp16 against int8 operands (int32 sums, scaled back in the
epilogue), autotuned, inside CUDA graphs, at batch 1 and 512. Writes
<out>/int8-temporal-<gpu>-<date>.json.

    python scripts/probe_int8_temporal.py [--out .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import triton
from profile_kernels import graph_us, write_gpu_report  # this folder's script, on the path when run as a script

from stgcn_rt.model import triton_kernels as kernels

JOINTS, STREAMS, TAPS = 33, 2, 9
# (channels, input frames, stride, residual input channels: 0 none, same as channels for identity)
LAYERS = [(64, 150, 1, 64), (128, 150, 2, 64), (128, 75, 1, 128), (256, 75, 2, 128), (256, 38, 1, 256)]


def measure(channels: int, frames: int, stride: int, c_res: int, batch: int) -> dict:
    planes = kernels.frame_planes(True, stride, channels, channels)
    in_rows = batch * planes * triton.cdiv(frames, planes) * JOINTS
    t_out = (frames - 1) // stride + 1
    identity = stride == 1 and c_res == channels
    block_input = torch.randn(STREAMS, batch * (t_out if identity else frames) * JOINTS, c_res, device="cuda",
                              dtype=torch.float16)
    res_w = None if identity else torch.randn(STREAMS, c_res, channels, device="cuda", dtype=torch.float16) * 0.05
    bias = torch.zeros(STREAMS, channels, device="cuda")
    y16 = torch.rand(STREAMS, in_rows, channels, device="cuda", dtype=torch.float16)
    w16 = torch.randn(STREAMS, TAPS, channels, channels, device="cuda", dtype=torch.float16) * 0.05
    y8 = torch.randint(0, 128, (STREAMS, in_rows, channels), device="cuda", dtype=torch.int8)
    w8 = torch.randint(-127, 128, (STREAMS, TAPS, channels, channels), device="cuda", dtype=torch.int8)
    scale = torch.full((STREAMS, channels), 1e-4, device="cuda")

    def fp16() -> torch.Tensor:
        return kernels.temporal_conv(y16, w16, bias, frames, JOINTS, stride, block_input, res_w, tma=True)

    def int8() -> torch.Tensor:
        return kernels.temporal_conv(y8, w8, bias, frames, JOINTS, stride, block_input, res_w, tma=True, scale=scale,
                                      out_dtype=torch.float16)
    result = {"channels": channels, "frames": frames, "stride": stride, "residual_channels": c_res, "batch": batch}
    for name, launch in (("fp16", fp16), ("int8", int8)):
        launch()
        result[f"{name}_tile"] = str(kernels._temporal_conv_tma_kernel.best_config)
        result[f"{name}_us"] = graph_us(launch)
    result["int8_over_fp16"] = round(result["int8_us"] / result["fp16_us"], 3)
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for the JSON")
    parser.add_argument("--batch", default="1,512", help="batch sizes, comma-separated")
    args = parser.parse_args()
    results = [measure(*layer, batch) for batch in map(int, args.batch.split(",")) for layer in LAYERS]
    write_gpu_report("int8-temporal", "python scripts/probe_int8_temporal.py",
                     "M=1, both streams, the temporal convolutions with tensor-memory-accelerator loads and each "
                     "block's residual: fp16 operands against int8 operands (int32 sums scaled back in the epilogue), "
                     "each autotuned, timed inside CUDA graphs", results, Path(args.out))


if __name__ == "__main__":
    main()
