"""What this machine can run: each backend and the pipeline, with the version found or why not.

``stgcn-rt check`` prints it. On a Jetson it answers the install questions (is JetPack's TensorRT
visible from this venv, does this torch see the GPU, did MediaPipe install) before any model is
loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from stgcn_rt import __version__

#: the oldest triton whose autotuner and TMA API the project's kernels use (torch 2.0 brings 2.0)
TRITON_KERNELS_MIN = (3, 2)


def triton_too_old(version: str) -> bool:
    """Whether triton ``version`` ("3.6.0", "3.2.0rc1", "2.0.0") predates :data:`TRITON_KERNELS_MIN`."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is None or (int(match.group(1)), int(match.group(2))) < TRITON_KERNELS_MIN


@dataclass
class Capability:
    """One thing stgcn-rt can use: ``detail`` is the version and device where ``ok``, else why not."""

    name: str
    ok: bool
    detail: str


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _torch() -> list[Capability]:
    import torch

    found = [Capability("pytorch (cpu)", True, f"torch {torch.__version__}")]
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        found.append(Capability("pytorch (cuda)", True, f"{torch.cuda.get_device_name(index)}, compute capability "
                                                        f"{major}.{minor}, CUDA {torch.version.cuda}"))
    else:
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} but no GPU visible"
        found.append(Capability("pytorch (cuda)", False, f"torch {torch.__version__} is {build}"))
    return found


def _gpu_kernels(cuda: bool) -> Capability:
    version = _installed("triton")
    if version is None:
        return Capability("gpu kernels", False, "triton is not installed: pip install 'stgcn-rt[kernels]'")
    if triton_too_old(version):
        return Capability("gpu kernels", False, f"triton {version} is older than 3.2")
    if not cuda:
        return Capability("gpu kernels", False, f"triton {version}, but they need a CUDA GPU")
    return Capability("gpu kernels", True, f"triton {version}; {triton_cache_note()}; {compile_threads_note()}")


def _fp8_kernels(kernels: Capability) -> Capability:
    """``--fast kernels-fp8``: the GPU kernels with the tensor memory accelerator's loads, where
    :func:`~stgcn_rt.kernels.ops.tma_available` finds them (as the kernels decide)."""
    name = "fp8 kernels"
    if not kernels.ok:
        return Capability(name, False, "they need the gpu kernels (the row above)")
    import torch

    from stgcn_rt.kernels.ops import tma_available

    device = torch.device("cuda", torch.cuda.current_device())
    if tma_available(device):
        return Capability(name, True, "--fast kernels-fp8 (fp8_temporal=True)")
    major, minor = torch.cuda.get_device_capability(device)
    if major < 9:
        return Capability(name, False, f"compute capability {major}.{minor}: they load through the tensor memory "
                                       "accelerator of Hopper (9.0) and newer GPUs; --fast (fp16) runs here")
    return Capability(name, False, f"triton {_installed('triton')} has no tensor descriptors: they need triton 3.4 "
                                   "or later")


def triton_cache_note() -> str:
    """Where Triton keeps the kernels it compiled and the tiles it chose: a first start spends about
    a minute on both on a 16-core H100 host (more with fewer cores), a restart reads them back if
    that folder persists and is writable."""
    try:
        from triton import knobs

        folder = Path(knobs.cache.dir)
    except ImportError:  # Triton before 3.4
        from triton.runtime.cache import default_cache_dir

        folder = Path(default_cache_dir())
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if os.access(existing, os.W_OK):
        return f"compiled kernels and tile choices cached in {folder}"
    return f"its cache {folder} is not writable, so every start compiles and tunes again: set TRITON_CACHE_DIR"


def compile_threads_note() -> str:
    """How many candidate tiles a first start compiles at once, and how to change it."""
    from stgcn_rt.errors import StgcnError
    from stgcn_rt.kernels.tuning import COMPILE_THREADS_VARIABLE, compile_threads

    try:
        return f"a first start compiles up to {compile_threads()} candidate tiles at once ({COMPILE_THREADS_VARIABLE})"
    except StgcnError as exc:
        return str(exc)


def _onnxruntime() -> Capability:
    import onnxruntime

    return Capability("onnxruntime", True, f"{onnxruntime.__version__}, providers "
                                           f"{', '.join(onnxruntime.get_available_providers())}")


def _tensorrt() -> Capability:
    from stgcn_rt.errors import StgcnError
    from stgcn_rt.export import trt_compat

    try:
        trt = trt_compat.import_tensorrt()
    except StgcnError as exc:
        return Capability("tensorrt", False, str(exc))
    if trt_compat.is_rtx(trt):
        return Capability("tensorrt", True, f"TensorRT-RTX {trt.__version__} (builds engines ahead of time; "
                                            "its runtime runs on RTX GPUs only)")
    return Capability("tensorrt", True, f"TensorRT {trt.__version__}")


def _optional(name: str, module: str, extra: str, version: Callable[[], str]) -> Capability:
    if importlib.util.find_spec(module) is None:
        return Capability(name, False, f"{module} is not installed: pip install 'stgcn-rt[{extra}]'")
    return Capability(name, True, version())


def capabilities() -> list[Capability]:
    """Every backend and optional part, in the order ``stgcn-rt check`` prints them."""
    found = [Capability("stgcn-rt", True, f"{__version__} on Python {platform.python_version()}, "
                                          f"{platform.machine()} {sys.platform}")]
    found += _torch()
    cuda = found[-1].ok
    kernels = _gpu_kernels(cuda)
    found += [
        _onnxruntime(),
        _tensorrt(),
        kernels,
        _fp8_kernels(kernels),
        # MediaPipe's import takes seconds, so its version comes from the package metadata; OpenCV
        # may be JetPack's system module, which has none
        _optional("pose (mediapipe)", "mediapipe", "pipeline", lambda: f"mediapipe {_installed('mediapipe')}"),
        _optional("video (opencv)", "cv2", "pipeline", lambda: f"opencv {importlib.import_module('cv2').__version__}"),
        _optional("triton client", "tritonclient", "triton", lambda: f"tritonclient {_installed('tritonclient')}"),
    ]
    return found
