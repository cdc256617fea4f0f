"""The demo's preparation: an untrained checkpoint and its ONNX export, validated on shipped windows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def prepare_demo(folder: Path, step: Callable[[int, int, str], None],
                 report: Callable[[str], None] = print) -> Path:
    """Write demo.pt and a validated demo.onnx into ``folder``; return the ONNX path."""
    from stgcn_rt.data import real_windows
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    step(1, 3, f"writing the untrained demo checkpoint {folder / 'demo.pt'}")
    checkpoint = make_demo_checkpoint(folder / "demo.pt")
    step(2, 3, f"exporting and validating {folder / 'demo.onnx'} on shipped real keypoint windows")
    np.save(folder / "real_windows.npy", real_windows())
    onnx_path, comparisons = export_onnx(load_checkpoint(checkpoint), folder / "demo.onnx", ExportOptions(),
                                         data=folder / "real_windows.npy")
    for comparison in comparisons:
        report(f"      {comparison.line()}")
    return onnx_path
