"""Launch two tuned kernels on a machine without a GPU, as far as Triton gets before timing their
candidates: a stand-in active driver names an sm_90 target, and a stand-in timing stops the
launch at the first candidate's timing, noting what was compiled by then and in which threads.
Prints one JSON line per kernel: the candidates, the compiled kernels (warps, stages and the tensor
descriptors' tiles), the threads that compiled them, and the tiles of the launch's own descriptors.
Run by tests/model/test_triton_tuning.py in a subprocess, because the interpreter those tests use
must not be on here."""

from __future__ import annotations

import json
import re
import threading

import torch
from triton.backends.compiler import GPUTarget
from triton.runtime import driver

from stgcn_rt.kernels import ops as kernels
from stgcn_rt.kernels.tuning import prune_tiles


class Hopper:
    def __init__(self) -> None:
        self.threads: set[str] = set()

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self) -> int:
        return 0

    def set_current_device(self, device: int) -> None:
        self.threads.add(threading.current_thread().name)

    def get_current_stream(self, device: int) -> int:
        return 0


class FirstTiming(Exception):
    pass


def tile(source) -> list[int]:  # noqa: ANN001 (an ASTSource)
    names = source.fn.arg_names
    constants = {names[path[0]]: value for path, value in source.constants.items()}
    return [constants[f"BLOCK_{d}"] for d in "MNK"]


def descriptor_tiles(signature: dict) -> list[list[int]]:
    found = re.findall(r"tensordesc<fp16\[([\d, ]+)\]>", " ".join(signature.values()))
    return [[int(n) for n in shape.split(",")] for shape in found]


def watch(tuner, hopper: Hopper, seen: dict) -> None:  # noqa: ANN001
    def stand_in_timing(kernel_call, quantiles):  # noqa: ANN001, ANN202
        compiled = tuner.fn.device_caches[0][0].values()
        seen["compiled"] = sorted([k.metadata.num_warps, k.metadata.num_stages, *tile(k.src),
                                   descriptor_tiles(k.src.signature)] for k in compiled)
        seen["threads"] = sorted(hopper.threads)
        seen["launch_tiles"] = [tuner.nargs[d].block_shape for d in ("y_desc", "w_desc") if d in tuner.nargs]
        raise FirstTiming

    tuner.__dict__["do_bench"] = stand_in_timing  # Triton's cached property


def launch(name: str, call, tuner, constants: dict, hopper: Hopper) -> None:  # noqa: ANN001
    seen: dict = {}
    watch(tuner, hopper, seen)
    hopper.threads.clear()
    try:
        call()
    except FirstTiming:
        pass
    candidates = prune_tiles(tuner.configs, {}, **constants)
    print(json.dumps({"kernel": name, "candidates": sorted([c.num_warps, c.num_stages, c.kwargs["BLOCK_M"],
                                                            c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]]
                                                           for c in candidates), **seen}), flush=True)


def main() -> None:
    hopper = Hopper()
    driver.set_active(hopper)
    channels, frames, joints = 64, 8, 33
    half = {"dtype": torch.float16}
    x = torch.zeros(2, frames * joints, channels, **half)
    index = torch.zeros(2, 3, 4, joints, dtype=torch.int32)
    launch("graph", lambda: kernels.graph_conv(x, index, torch.zeros(2, 3, 4, joints), (1, 4, 1),
                                               torch.zeros(2, 3, channels, channels, **half),
                                               torch.zeros(2, joints, channels), joints, frames),
           kernels._graph_conv_kernel, {"C_IN": channels, "C_OUT": channels}, hopper)
    wide = torch.zeros(2, frames * joints, 2 * channels, **half)
    w = torch.zeros(2, 9, 2 * channels, 2 * channels, **half)
    launch("temporal_tma", lambda: kernels.temporal_conv(wide, w, torch.zeros(2, 2 * channels), frames, joints, 1,
                                                         residual=wide, tma=True),
           kernels._temporal_conv_tma_kernel, {"C": 2 * channels, "C_OUT": 2 * channels}, hopper)


if __name__ == "__main__":
    main()
