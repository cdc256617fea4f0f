"""What builds the network the PyTorch runner runs (as polygraphy's loaders build what its runners
execute): the plain reference network, the optimized rewrite (:mod:`stgcn_rt.model.optimized`) or the
project's GPU kernels (:mod:`stgcn_rt.kernels`), each in fp32 or with fp16 blocks, optionally under
torch.compile. :class:`NetworkOptions` holds the choice and refuses the combinations that cannot run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any

import torch

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.model.network import set_block_precision
from stgcn_rt.model.optimized import optimize_model
from stgcn_rt.runtime.environment import triton_too_old

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise StgcnError(f"unknown device '{device}': use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StgcnError(f"device {device} asked for, but PyTorch sees no CUDA GPU: use --device cpu")
    return dev


def compile_model(model: torch.nn.Module, autotune: bool = False) -> Any:
    """torch.compile the model; a model with parallel streams compiles each stream in place instead,
    so the two-stream fork and join stay outside the compiled code.

    ``dynamic=None``: the first batch size compiles static, a second one compiles a batch-dynamic
    graph, so a scheduler's many batch buckets cost two compilations, not one each. ``autotune``
    times candidate GEMM/convolution kernels for each shape (minutes of compilation); the runner
    captures its own CUDA graphs, so Inductor's are left off.
    """
    options: dict[str, Any] = {"dynamic": None}
    if autotune:
        options["mode"] = "max-autotune-no-cudagraphs"
    streams = getattr(model, "streams", None)
    if streams is not None and getattr(model, "parallel", False):
        for stream in streams:
            stream.compile(**options)
        return model
    return torch.compile(model, **options)


def kernel_network(model: torch.nn.Module, device: torch.device, tma_loads: bool = True,
                   fp8_temporal: bool = False) -> torch.nn.Module:
    """The model on the project's GPU kernels (written in OpenAI's Triton), blocks in fp16; with
    ``tma_loads`` the temporal convolutions load through the tensor memory accelerator where the GPU
    has one, and with ``fp8_temporal`` too they multiply fp8 operands."""
    triton = require("triton", "kernels", "the GPU kernels (kernels=True)")
    if triton_too_old(triton.__version__):
        raise StgcnError(f"the GPU kernels need triton >= 3.2 and this environment has {triton.__version__} "
                         "(torch 2.0 brings 2.0): pip install 'stgcn-rt[kernels]' where your torch allows it, "
                         "or leave the kernels off")
    from stgcn_rt.kernels.network import KernelNetwork
    from stgcn_rt.kernels.ops import tma_available

    network = KernelNetwork(model.eval(), tma_loads and tma_available(device), fp8_temporal=fp8_temporal).to(device)
    network.set_block_dtype(torch.float16)
    return network


def plain_network(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` (moving or casting must not change the caller's) with its blocks in ``dtype``.

    Input normalisation, pooling and the classifier stay fp32 whatever ``dtype`` is: the pooling
    sums over T x V positions, which pass fp16's 65,504 once the last block's activations reach the
    hundreds (:func:`~stgcn_rt.model.network.set_block_precision`).
    """
    return set_block_precision(copy.deepcopy(model), dtype).eval()


@dataclass(frozen=True)
class NetworkOptions:
    """Which network the PyTorch runner builds, and how.

    ``optimize``: the inference rewrite (channels-last, sparse graph step, folded BatchNorms; on CUDA
    the two streams on two CUDA streams unless ``parallel_streams`` is False). ``kernels``: the
    project's GPU kernels instead (CUDA, fp16, no torch.compile; ``tma_loads=False``: pointer loads on
    Hopper too; ``fp8_temporal``: the temporal convolutions on fp8 operands). ``compile``:
    torch.compile (``autotune``: its max-autotune, minutes of compilation).
    """

    precision: str = "fp32"
    optimize: bool = False
    parallel_streams: bool = True
    kernels: bool = False
    tma_loads: bool = True
    fp8_temporal: bool = False
    compile: bool = False
    autotune: bool = False

    @classmethod
    def from_options(cls, precision: str, options: dict[str, Any]) -> NetworkOptions:
        """From keyword options as ``load_classifier`` takes them; ``triton_kernels`` is the old name of
        ``kernels``. An unknown option is one clear error."""
        options = dict(options)
        if "triton_kernels" in options:
            options["kernels"] = options.pop("triton_kernels")
        known = {f.name for f in fields(cls)} - {"precision"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise StgcnError(f"the PyTorch runner has no option {', '.join(unknown)}: choose from "
                             f"{', '.join(sorted(known))}")
        return cls(precision=precision, **options)

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    def check(self, device: torch.device) -> None:
        """One clear error for a combination that cannot run on ``device``."""
        if self.precision not in PRECISIONS:
            raise StgcnError(f"PyTorch precision must be one of {', '.join(PRECISIONS)}, got {self.precision}")
        if device.type != "cuda" and self.precision != "fp32":
            raise StgcnError("fp16 and CUDA graphs need a CUDA device: use --device cuda or fp32")
        if self.autotune and not self.compile:
            raise StgcnError("autotune tunes torch.compile's kernels: turn compile on too")
        if self.fp8_temporal and not self.kernels:
            raise StgcnError("fp8 temporal convolutions are the GPU kernels' option: turn kernels on too")
        if self.kernels and self.compile:
            raise StgcnError("the GPU kernels replace torch.compile's: turn compile off")
        if self.kernels and (self.precision != "fp16" or device.type != "cuda"):
            raise StgcnError("the GPU kernels run fp16 on a CUDA GPU: use --device cuda and fp16")

    def build(self, model: torch.nn.Module, device: torch.device) -> Any:
        """The network on ``device``, from ``model`` (which is left as it was)."""
        self.check(device)
        network: torch.nn.Module
        if self.kernels:
            network = kernel_network(model, device, self.tma_loads, self.fp8_temporal)
        elif self.optimize:  # the rewrite keeps input normalisation, pooling and the classifier in fp32
            network = optimize_model(model, parallel=self.parallel_streams).to(device)
            network.set_block_dtype(self.dtype)
        else:
            network = plain_network(model, self.dtype).to(device)
        return compile_model(network, self.autotune) if self.compile else network
