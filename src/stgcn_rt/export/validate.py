"""Check an exported model against the PyTorch model it came from."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime.classifier import Classifier, softmax

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


def load_windows(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an .npy of skeleton windows shaped (N, C, T, V, M)."""
    path = Path(path)
    if not path.exists():
        raise StgcnError(f"windows file {path} not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StgcnError(f"{path} is not a readable .npy array: {str(exc)[:200]}") from exc
    if data.ndim != 5:
        raise StgcnError(f"{path} has shape {data.shape}; windows must be (N, C, T, V, M)")
    if not np.issubdtype(data.dtype, np.floating):
        raise StgcnError(f"{path} has dtype {data.dtype}; windows must be floating point")
    return data.astype(np.float32, copy=False)


def random_windows(shape: tuple[int | None, ...], count: int, seed: int = 0) -> np.ndarray:
    """Keypoint-like windows: uniform in [0, 1) like normalised (x, y, visibility)."""
    _, c, t, v, m = (d or 1 for d in shape)
    return np.random.default_rng(seed).random((count, c, t, v, m), dtype=np.float32)


def compare(reference: Classifier, candidate: Classifier, windows: np.ndarray, data: str,
            criteria: Criteria = CRITERIA["fp32"]) -> Comparison:
    ref = reference.logits(windows).astype(np.float64)
    got = candidate.logits(windows).astype(np.float64)
    ref_p, got_p = softmax(ref), softmax(got)
    return Comparison(
        data=data,
        windows=len(windows),
        max_logit_diff=float(np.abs(ref - got).max()),
        max_prob_diff=float(np.abs(ref_p - got_p).max()),
        top1_agreement=float((ref.argmax(1) == got.argmax(1)).mean()),
        criteria=criteria,
    )


def validate(reference: Classifier, candidate: Classifier, data: str | os.PathLike[str] | None = None,
             random_count: int = 8, precision: str = "fp32") -> list[Comparison]:
    """Compare on random windows and, when given, on real windows from an .npy file.

    fp32 must match within 1e-4. For fp16 and int8, random windows have no decision margin, so
    they are reported against fp32's strict bounds only for information; real windows must keep
    the decisions (top-1 agreement) within the precision's criteria.
    """
    criteria = CRITERIA[precision]
    random_criteria = criteria if precision == "fp32" else Criteria(None, criteria.prob_tolerance, None)
    results = [compare(reference, candidate, random_windows(candidate.input_shape, random_count),
                       "random windows", random_criteria)]
    if data is not None:
        windows = fit_persons(load_windows(data), candidate.input_shape[4])
        candidate.check_windows(windows)
        results.append(compare(reference, candidate, windows, f"real windows ({Path(data).name})", criteria))
    return results


def fit_persons(windows: np.ndarray, persons: int | None) -> np.ndarray:
    """Pad the person axis with absent (all-zero) persons, as the pipeline does, up to ``persons``."""
    have = windows.shape[4]
    if persons is None or have == persons:
        return windows
    if have > persons:
        raise StgcnError(f"windows hold {have} persons but the model takes {persons}")
    pad = np.zeros((*windows.shape[:4], persons - have), dtype=windows.dtype)
    return np.concatenate([windows, pad], axis=4)
