"""Compile the Triton kernels for GPU architectures on a machine without a GPU (Triton ships its
own PTX assembler): every kernel specialisation the MediaPipe two-stream model launches, in its
smallest tile configuration (``--all-tiles``: every one the autotuner may choose). Prints one JSON
line per compilation with the shared memory it needs. Run by tests/model/test_triton_model.py in a subprocess,
because the interpreter those tests use must not be on here."""

import json
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from stgcn_rt.model import triton_kernels as kernels
from stgcn_rt.model.network import BLOCKS, TEMPORAL_KERNEL

DEPTHS = 1 + (4 << 4) + (1 << 8)  # MediaPipe 33, spatial partitions: 1, 4 and 1 neighbours


def layer_shapes() -> list[tuple[str, dict]]:
    shapes, channels = [], 3
    for out, stride, residual in BLOCKS:
        kind = 0 if not residual else 1 if channels == out and stride == 1 else 2
        shapes.append(("graph", {"C_IN": channels, "C_OUT": out, "K": 3, "D": 4, "DEPTHS": DEPTHS}))
        shapes.append(("temporal", {"C": out, "C_OUT": out, "C_RES": channels if kind == 2 else 0,
                                    "TAPS": TEMPORAL_KERNEL, "STRIDE": stride, "RESIDUAL": kind}))
        channels = out
    unique = {json.dumps(s, sort_keys=True): s for s in shapes}
    return [tuple(json.loads(k)) for k in unique]


def main(archs: list[int], all_tiles: bool) -> None:
    tuners = {"graph": kernels._graph_conv_kernel, "temporal": kernels._temporal_conv_kernel}
    for arch in archs:
        for name, constants in layer_shapes():
            tuner = tuners[name]
            jit = tuner.fn
            signature = {p.name: "constexpr" if p.is_constexpr else
                         ("*fp32" if p.name in ("weight_ptr", "bias_ptr") else "*i32" if p.name == "index_ptr"
                          else "*fp16" if p.name.endswith("_ptr") else "i32") for p in jit.params}
            pointers = [i for i, p in enumerate(jit.params) if p.name.endswith("_ptr")]
            configs = kernels._prune(tuner.configs, {}, **constants)
            for config in configs if all_tiles else configs[:1]:
                source = ASTSource(fn=jit, signature=signature, constexprs={**constants, **config.kwargs},
                                   attrs={(i,): [["tt.divisibility", 16]] for i in pointers})
                compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                                          options={"num_warps": config.num_warps, "num_stages": config.num_stages})
                print(json.dumps({"arch": arch, "kernel": name, "shape": constants, "tile": config.kwargs,
                                  "shared": compiled.metadata.shared}), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:] if a != "--all-tiles"], "--all-tiles" in sys.argv)
