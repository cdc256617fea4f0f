"""Reading a user's ONNX file: one clear line for a missing, undecodable or graph-less one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from stgcn_rt.errors import StgcnError, first_line

if TYPE_CHECKING:
    import onnx


def read_onnx(path: str | os.PathLike[str], load_external_data: bool = True) -> onnx.ModelProto:
    """Load ``path`` as an ONNX model that has a graph with inputs and outputs.

    Protobuf decodes many files that are not ONNX (a short text file, say) as an empty model, so a
    model without graph inputs or outputs is refused here rather than failing later as an index error.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise StgcnError(f"{path} not found" if not path.exists() else f"{path} is a directory, not an ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # onnx raises DecodeError, OSError and others for bad files
        raise StgcnError(f"{path} is not a readable ONNX model: {first_line(exc)[:200]}") from exc
    if not model.graph.input or not model.graph.output:
        raise StgcnError(f"{path} is not an ONNX model (no graph inputs or outputs): export one with stgcn-rt export")
    return model


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata stgcn-rt writes into its exports (layout, persons, classes, ...)."""
    return {prop.key: prop.value for prop in read_onnx(path, load_external_data=False).metadata_props}
