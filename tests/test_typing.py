"""The whole package type-checks with mypy, its TensorRT code against the TensorRT 10 API
(tensorrt-stubs; no full TensorRT installs here, so this is how its calls are checked)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TENSORRT_RUNNER = "src/stgcn_rt/runtime/backends/tensorrt_runner.py"


def mended_stubs(folder: Path) -> Path:
    """Copy tensorrt-stubs and mend the slips that stop mypy from parsing them."""
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        pytest.skip("tensorrt-stubs is not installed")
    site = Path(spec.origin).parents[1]
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / package, folder / package)
    stub = folder / "tensorrt_bindings" / "tensorrt.pyi"
    text = re.sub(r"([(,] ?)in: ", r"\1in_: ", stub.read_text())
    stub.write_text(text.replace(", channel_axis: int)", ", channel_axis: int = ...)"))
    return folder


def run_mypy(paths: list[str], stubs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MYPYPATH": str(stubs)}
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", *paths],
                          cwd=REPO, env=env, capture_output=True, text=True)


def test_mypy_passes_on_the_package(tmp_path):
    pytest.importorskip("mypy")
    stubs = mended_stubs(tmp_path / "stubs")
    result = run_mypy(["src/stgcn_rt"], stubs)
    assert result.returncode == 0, result.stdout + result.stderr
    # the stubs really are in use: a call TensorRT does not have is caught
    broken = tmp_path / "broken_runner.py"
    broken.write_text((REPO / TENSORRT_RUNNER).read_text().replace("execute_async_v3(", "execute_async_v9("))
    result = run_mypy([str(broken)], stubs)
    assert result.returncode != 0 and "execute_async_v9" in result.stdout
