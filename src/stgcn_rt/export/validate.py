"""Agreement of an exported model with the PyTorch model it came from: criteria per precision, the
comparison of two models' logits on the same windows, and :func:`validate_onnx`, which runs the
checkpoint's network in PyTorch and the ONNX file in ONNX Runtime (the runtime's own comparison of
any two loaded models, engines included, builds on these: :mod:`stgcn_rt.runtime.validation`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stgcn_rt.window import Shape, check_windows, fit_persons, load_windows, random_windows, softmax, static_chunks

if TYPE_CHECKING:
    from stgcn_rt.model.checkpoint import LoadedModel

FP32_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Criteria:
    """What a model of a given precision must meet against the fp32 PyTorch reference."""

    logit_tolerance: float | None
    prob_tolerance: float | None
    min_top1: float | None

    def describe(self) -> str:
        parts = []
        if self.logit_tolerance is not None:
            parts.append(f"|logit diff| <= {self.logit_tolerance:.0e}")
        if self.prob_tolerance is not None:
            parts.append(f"|prob diff| <= {self.prob_tolerance:.0e}")
        if self.min_top1 is not None:
            parts.append(f"top-1 >= {self.min_top1:.0%}")
        return ", ".join(parts) or "reported only"


#: fp32 must reproduce PyTorch; reduced precisions must keep the decisions.
CRITERIA = {
    "fp32": Criteria(FP32_TOLERANCE, FP32_TOLERANCE, None),
    "fp16": Criteria(None, 1e-2, 0.99),
    "int8": Criteria(None, None, 0.99),
}


@dataclass
class Comparison:
    """Agreement of a candidate backend with the reference on one set of windows."""

    data: str
    windows: int
    max_logit_diff: float
    max_prob_diff: float
    top1_agreement: float
    criteria: Criteria = CRITERIA["fp32"]

    @property
    def passed(self) -> bool:
        c = self.criteria
        return ((c.logit_tolerance is None or self.max_logit_diff <= c.logit_tolerance)
                and (c.prob_tolerance is None or self.max_prob_diff <= c.prob_tolerance)
                and (c.min_top1 is None or self.top1_agreement >= c.min_top1))

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.data}: {self.windows} window{'' if self.windows == 1 else 's'}, "
            f"max |logit diff| {self.max_logit_diff:.2e}, "
            f"max |prob diff| {self.max_prob_diff:.2e}, top-1 agreement {self.top1_agreement:.1%} "
            f"(needs {self.criteria.describe()})"
        )


def compare(reference: np.ndarray, candidate: np.ndarray, data: str,
            criteria: Criteria = CRITERIA["fp32"]) -> Comparison:
    """How far ``candidate``'s logits are from ``reference``'s, both (N, classes) of the same windows."""
    ref, got = reference.astype(np.float64), candidate.astype(np.float64)
    ref_p, got_p = softmax(ref), softmax(got)
    return Comparison(
        data=data,
        windows=len(ref),
        max_logit_diff=float(np.abs(ref - got).max()),
        max_prob_diff=float(np.abs(ref_p - got_p).max()),
        top1_agreement=float((ref.argmax(1) == got.argmax(1)).mean()),
        criteria=criteria,
    )


def validation_sets(input_shape: Shape, data: str | os.PathLike[str] | None = None, random_count: int = 8,
                    precision: str = "fp32") -> list[tuple[str, np.ndarray, Criteria]]:
    """The windows a model of ``input_shape`` is validated on, each with its name and criteria.

    fp32 must match within 1e-4. For fp16 and int8, random windows have no decision margin, so
    they are reported against fp32's strict bounds only for information; real windows (an .npy file
    ``data``, fitted to the model's persons) must keep the decisions within the precision's criteria.
    """
    criteria = CRITERIA[precision]
    random_criteria = criteria if precision == "fp32" else Criteria(None, criteria.prob_tolerance, None)
    sets = [("random windows", random_windows(input_shape, random_count), random_criteria)]
    if data is not None:
        windows = fit_persons(load_windows(data), input_shape[4])
        sets.append((f"real windows ({Path(data).name})", windows, criteria))
    return sets


def run_comparisons(reference: Callable[[np.ndarray], np.ndarray], candidate: Callable[[np.ndarray], np.ndarray],
                    input_shape: Shape, who: str, data: str | os.PathLike[str] | None = None,
                    random_count: int = 8, precision: str = "fp32") -> list[Comparison]:
    """:func:`compare` the logits functions ``reference`` and ``candidate`` on :func:`validation_sets`."""
    results = []
    for name, windows, criteria in validation_sets(input_shape, data, random_count, precision):
        check_windows(windows, input_shape, who)
        results.append(compare(reference(windows), candidate(windows), name, criteria))
    return results


def validate_onnx(loaded: LoadedModel, onnx_path: str | os.PathLike[str], data: str | os.PathLike[str] | None = None,
                  precision: str = "fp32", random_count: int = 8) -> list[Comparison]:
    """The ONNX file in ONNX Runtime (CPU) against ``loaded``'s network in fp32 PyTorch."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    model_input, output = session.get_inputs()[0], session.get_outputs()[0].name
    shape = tuple(d if isinstance(d, int) else None for d in model_input.shape)
    batch = shape[0]

    def onnx_logits(windows: np.ndarray) -> np.ndarray:
        chunks = static_chunks(windows, batch) if batch else [(windows, len(windows))]
        return np.concatenate([session.run([output], {model_input.name: chunk})[0][:count] for chunk, count in chunks])

    def torch_logits(windows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return loaded.model(torch.from_numpy(windows)).numpy()

    return run_comparisons(torch_logits, onnx_logits, shape, Path(onnx_path).name, data, random_count, precision)
