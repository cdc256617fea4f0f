"""stgcn-rt check: every backend and optional part, with its version or why it cannot run here."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from helpers import cli_runner

import stgcn_rt
from stgcn_rt.cli import cli
from stgcn_rt.runtime import environment
from stgcn_rt.runtime.environment import capabilities

NAMES = ["stgcn-rt", "pytorch (cpu)", "pytorch (cuda)", "onnxruntime", "tensorrt", "gpu kernels", "fp8 kernels",
         "pose (mediapipe)", "video (opencv)", "triton client"]


def test_every_part_is_listed_with_what_was_found():
    found = {c.name: c for c in capabilities()}
    assert list(found) == NAMES
    assert found["stgcn-rt"].detail.startswith(f"{stgcn_rt.__version__} on Python ")  # also run from a source tree
    assert found["pytorch (cpu)"].ok and found["pytorch (cpu)"].detail == f"torch {torch.__version__}"
    assert found["onnxruntime"].ok and "CPUExecutionProvider" in found["onnxruntime"].detail
    assert found["pytorch (cuda)"].ok == torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert not found["gpu kernels"].ok
        assert found["fp8 kernels"] == environment.Capability("fp8 kernels", False,
                                                              "they need the gpu kernels (the row above)")


@pytest.mark.parametrize(("capability", "triton", "available", "ok", "detail"), [
    ((8, 7), "3.6.0", False, False, "compute capability 8.7: they load through the tensor memory accelerator of "
                                    "Hopper (9.0) and newer GPUs; --fast (fp16) runs here"),
    ((9, 0), "3.3.1", False, False, "triton 3.3.1 has no tensor descriptors: they need triton 3.4 or later"),
    ((9, 0), "3.6.0", True, True, "--fast kernels-fp8 (fp8_temporal=True)"),
])
def test_fp8_kernels_need_hopper_and_tensor_descriptors(monkeypatch, capability, triton, available, ok, detail):
    """A Jetson Orin (8.7) or an older triton is told why --fast kernels-fp8 cannot run, and what can;
    whether it can is the kernels' own check (tma_available)."""
    if environment.triton_too_old(pytest.importorskip("triton").__version__):
        pytest.skip("the kernels need triton 3.2")
    from stgcn_rt.kernels import ops

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: capability)
    monkeypatch.setattr(ops, "tma_available", lambda device: available)
    monkeypatch.setattr(environment, "_installed", lambda name: triton)
    kernels = environment.Capability("gpu kernels", True, f"triton {triton}")
    assert environment._fp8_kernels(kernels) == environment.Capability("fp8 kernels", ok, detail)


@pytest.mark.skipif(torch.cuda.is_available(), reason="describes a machine without a GPU")
def test_what_is_missing_says_how_to_get_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mediapipe" else find_spec(name, *a))
    found = {c.name: c for c in capabilities()}
    assert found["pose (mediapipe)"] == environment.Capability(
        "pose (mediapipe)", False, "mediapipe is not installed: pip install 'stgcn-rt[pipeline]'")
    monkeypatch.setattr(environment, "_installed", lambda name: "2.0.0" if name == "triton" else None)
    assert environment._gpu_kernels(cuda=True).detail == "triton 2.0.0 is older than 3.2"
    monkeypatch.setattr(environment, "_installed", lambda name: None)
    assert "pip install 'stgcn-rt[kernels]'" in environment._gpu_kernels(cuda=True).detail


def test_check_command_prints_one_aligned_row_each():
    result = cli_runner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.stderr
    rows = result.stdout.splitlines()
    assert [row.split("  ")[0] for row in rows] == NAMES
    assert len({row.index(" yes ") if " yes " in row else row.index(" no ") for row in rows}) == 1


@pytest.mark.parametrize(("version", "old"), [("2.0.0", True), ("3.1.0", True), ("3.2.0rc1", False), ("3.6.0", False),
                                              ("10.0", False), ("nightly", True)])
def test_triton_version_rule(version, old):
    assert environment.triton_too_old(version) is old


def test_the_triton_cache_folder_is_named_and_checked(monkeypatch, tmp_path):
    """Restarts of the Triton kernels skip minutes of compiling and tuning only where their cache persists."""
    triton = pytest.importorskip("triton")
    if environment.triton_too_old(triton.__version__):
        pytest.skip("the kernels need triton 3.2")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    assert environment.triton_cache_note() == f"compiled kernels and tile choices cached in {tmp_path / 'cache'}"
    monkeypatch.setattr(environment.os, "access", lambda path, mode: False)
    assert environment.triton_cache_note().endswith("is not writable, so every start compiles and tunes again: "
                                                    "set TRITON_CACHE_DIR")


def test_check_says_how_many_candidates_compile_at_once(monkeypatch):
    triton = pytest.importorskip("triton")
    if environment.triton_too_old(triton.__version__):
        pytest.skip("the kernels need triton 3.2")
    monkeypatch.setenv("STGCN_RT_COMPILE_THREADS", "4")
    assert environment.compile_threads_note() == ("a first start compiles up to 4 candidate tiles at once "
                                                  "(STGCN_RT_COMPILE_THREADS)")
    monkeypatch.setenv("STGCN_RT_COMPILE_THREADS", "four")
    assert environment.compile_threads_note().startswith("STGCN_RT_COMPILE_THREADS='four': give a whole number")
