"""Compile the Triton kernels for GPU architectures on a machine without a GPU (Triton ships its
own PTX assembler): every kernel specialisation the MediaPipe two-stream model launches, the
tuned ones in their first tile configuration (``--all-tiles``: every one the autotuner may
choose). Prints one JSON line per compilation with the shared memory it needs. Run by
tests/model/test_triton_model.py in a subprocess, because the interpreter those tests use must
not be on here."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from stgcn_rt.kernels import ops as kernels
from stgcn_rt.kernels.tuning import compile_threads, prune_tiles
from stgcn_rt.model.network import TEMPORAL_KERNEL, block_shapes

DEPTHS = 1 + (4 << 4) + (1 << 8)  # MediaPipe 33, spatial partitions: 1, 4 and 1 neighbours


def layer_shapes() -> list[tuple[str, dict]]:
    shapes = []
    blocks = block_shapes()
    for b in blocks:
        out = b.out_channels
        graph = {"C_IN": b.in_channels, "C_OUT": out, "K": 3, "D": 4, "DEPTHS": DEPTHS}
        temporal = {"C": out, "C_OUT": out, "C_RES": b.in_channels if b.residual == "conv" else 0,
                    "TAPS": TEMPORAL_KERNEL, "STRIDE": b.stride, "RESIDUAL": kernels.RESIDUAL_CODES[b.residual]}
        shapes += [("graph", graph | {"PLANES": 1}), ("temporal", temporal)]
        if kernels.takes_tma_loads(True, out, out):  # on Hopper: TMA loads, their input in frame planes
            pooled = kernels.POOL_ROWS if b is blocks[-1] else 0  # the last one pools its rows
            planes = graph | {"PLANES": kernels.frame_planes(True, b.stride, out, out)}
            shapes += [("graph", planes), ("temporal_tma", temporal | {"POOL_ROWS": pooled}),
                       ("graph_fp8", planes), ("temporal_tma", temporal | {"POOL_ROWS": pooled, "FP8": True})]
    unique = {json.dumps(s, sort_keys=True): s for s in shapes}
    return [tuple(json.loads(k)) for k in unique]


#: the kernels launched once per forward pass, as the demo model launches them: (kernel, constants,
#: pointer types other than fp32, warps)
FIXED = [
    (kernels._prepare_kernel, {"C": 3, "MOTION": 1, "BLOCK": 128, "C_PAD": 4}, {"out_ptr": "*fp16"}, 4),
    (kernels._pool_kernel, {"C": 256, "BLOCK_R": 2048, "BLOCK_C": 8}, {"y_ptr": "*fp16"}, 8),
    (kernels._classify_kernel, {"S": 2, "C": 256, "CLASSES": 2, "BLOCK_C": 256, "BLOCK_CLASSES": 2,
                                "BLOCK_GROUPS": 0}, {}, 4),
    (kernels._classify_kernel, {"S": 2, "C": 256, "CLASSES": 2, "BLOCK_C": 256, "BLOCK_CLASSES": 2,
                                "BLOCK_GROUPS": 16}, {}, 4),
]


def build(jit: triton.runtime.JITFunction, constants: dict, pointers: dict[str, str], arch: int, warps: int,
          stages: int) -> int:
    """Compile for ``arch``; returns the shared memory the kernel needs. ``pointers``: the type of each
    pointer argument (``*fp32`` unless named) and tensor descriptor; every pointer 16-byte aligned, as
    PyTorch allocates."""
    signature = {p.name: "constexpr" if p.is_constexpr else pointers[p.name] if p.name in pointers
                 else "*fp32" if p.name.endswith("_ptr") else "i32" for p in jit.params}
    aligned = [i for i, p in enumerate(jit.params) if p.name.endswith("_ptr")]
    source = ASTSource(fn=jit, signature=signature, constexprs=constants,
                       attrs={(i,): [["tt.divisibility", 16]] for i in aligned})
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": warps, "num_stages": stages, **kernels._COMPILE_OPTIONS})
    return compiled.metadata.shared


def main(archs: list[int], all_tiles: bool) -> None:
    tuners = {"graph": kernels._graph_conv_kernel, "graph_fp8": kernels._graph_conv_kernel,
              "temporal": kernels._temporal_conv_kernel, "temporal_tma": kernels._temporal_conv_tma_kernel}
    half = {name: "*fp16" for name in ("x_ptr", "w_ptr", "out_ptr", "y_ptr", "res_ptr", "res_w_ptr")}
    builds = []  # (what to print, build's arguments)
    for arch in archs:
        for name, constants in layer_shapes():
            if (name in ("temporal_tma", "graph_fp8") or constants.get("PLANES", 1) > 1) and not arch >= 90:
                continue  # the tensor memory accelerator (and so fp8) is Hopper's: kernels.tma_available
            tuner = tuners[name]
            configs = prune_tiles(tuner.configs, {}, **constants)
            for config in configs if all_tiles else configs[:1]:
                m, n, k = (config.kwargs[f"BLOCK_{d}"] for d in "MNK")
                descriptors = ({"y_desc": f"tensordesc<fp8e4nv[1,{m},{k}]>", "w_desc": f"tensordesc<fp8e4nv[{n},{k}]>"}
                               if constants.get("FP8") else
                               {"y_desc": f"tensordesc<fp16[1,{m},{k}]>", "w_desc": f"tensordesc<fp16[{k},{n}]>"})
                output = {"out_ptr": "*fp8e4nv"} if name == "graph_fp8" else {}
                builds.append(({"arch": arch, "kernel": name, "shape": constants, "tile": config.kwargs},
                               (tuner.fn, {**constants, **config.kwargs},
                                half | {"index_ptr": "*i32"} | descriptors | output,
                                arch, config.num_warps, config.num_stages)))
        for jit, constants, pointers, warps in FIXED:
            builds.append(({"arch": arch, "kernel": jit.__name__, "shape": constants, "tile": {}},
                           (jit, constants, pointers, arch, warps, 1)))
    # in threads, as the project compiles candidate tiles (Triton's compiler mostly runs outside the GIL)
    with ThreadPoolExecutor(compile_threads()) as pool:
        for (described, _), shared in zip(builds, pool.map(lambda b: build(*b[1]), builds)):
            print(json.dumps(described | {"shared": shared}), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:] if a != "--all-tiles"], "--all-tiles" in sys.argv)
