"""Agreement of a loaded model (ONNX, an engine, a served one) with its checkpoint run by PyTorch, on
the windows and criteria of :mod:`stgcn_rt.export.validate`: what ``stgcn-rt validate`` reports."""

from __future__ import annotations

import os

from stgcn_rt.export.validate import Comparison, run_comparisons
from stgcn_rt.runtime.classifier import Classifier


def validate(reference: Classifier, candidate: Classifier, data: str | os.PathLike[str] | None = None,
             random_count: int = 8, precision: str = "fp32") -> list[Comparison]:
    """``candidate`` against ``reference`` (the checkpoint in fp32 PyTorch) on random windows and,
    when given, the real windows of an .npy file."""
    return run_comparisons(reference.logits, candidate.logits, candidate.input_shape, candidate.name, data,
                           random_count, precision)
