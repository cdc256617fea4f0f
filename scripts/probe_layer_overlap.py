"""How much would running two layers at once gain at batch 1? The bound for a persistent or
dataflow design, in which a block's temporal convolution starts on frames whose graph convolution
is done while the rest is still running. A probe, not such a design: a block's graph convolution and
its temporal convolution, on independent inputs (no dependency between them: an upper bound), timed
inside one CUDA graph one after the other and on two CUDA streams at once, beside each alone
(``do_bench_cudagraph``), both streams of the model in each launch as the forward pass runs them.
Per block shape of the MediaPipe model at batch 1 (the first block of each width). Writes
<out>/layer-overlap-<gpu>-<date>.json.

    python scripts/probe_layer_overlap.py [--out .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from profile_kernels import demo_triton_network, graph_us, write_gpu_report  # this folder's script, on the path

JOINTS = 33
BLOCKS = {1: 150, 5: 75, 8: 38}  # a 64-, a 128- and a 256-channel block (stride 1), with their frames


def measure(block: torch.nn.Module, frames: int) -> dict:
    streams, _, c_in, _ = block.gcn_w.shape
    x = torch.randn(streams, frames * JOINTS, c_in, device="cuda", dtype=torch.float16)
    y = block.graph(x, frames, JOINTS, tma=True)  # the temporal convolution's input, made once

    def graph() -> object:
        return block.graph(x, frames, JOINTS, tma=True)

    def temporal() -> object:
        return block.temporal(y, x, frames, JOINTS, tma=True)

    side = torch.cuda.Stream()

    def serial() -> None:
        graph()
        temporal()

    def concurrent() -> None:
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            temporal()
        graph()
        torch.cuda.current_stream().wait_stream(side)

    graph(), temporal()  # autotune outside the graphs
    result = {"channels": c_in, "frames": frames, "graph_us": graph_us(graph), "temporal_us": graph_us(temporal),
              "serial_us": graph_us(serial), "concurrent_us": graph_us(concurrent)}
    result["overlap_saving_us"] = round(result["serial_us"] - result["concurrent_us"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    net = demo_triton_network("cuda")
    results = []
    with torch.inference_mode():
        for i, frames in BLOCKS.items():
            results.append({"block": i} | measure(net.blocks[i], frames))
            print(results[-1], flush=True)
    write_gpu_report("layer-overlap", "python scripts/probe_layer_overlap.py",
                     "batch 1, M=1, both streams: a block's graph and temporal convolution on independent inputs, "
                     "each alone, one after the other and on two CUDA streams at once, each form captured in a CUDA "
                     "graph; overlap_saving_us = serial - concurrent, an upper bound for running them together",
                     results, Path(args.out))


if __name__ == "__main__":
    main()
