"""Agreement of fp16 and INT8 (Q/DQ) ONNX models with fp32 PyTorch, on real windows, on the CPU.

For each checkpoint: export fp32 and fp16 ONNX, quantize INT8 in both forms (for TensorRT and for
ONNX Runtime's CPU kernels, calibrated on one set of real windows), and compare every model with the
fp32 PyTorch model on other real windows (shifted offsets, so not the calibration windows). Writes
docs/benchmarks/precision-cpu.{json,md} (one current report; git keeps the earlier ones).

    python scripts/measure_precision.py trained.pt demo.pt
(trained.pt from scripts/train_tiny_checkpoint.py; demo.pt from stgcn-rt init-demo)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from stgcn_rt.data import real_skeletons, skeleton_windows
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.export.quantize import quantize_int8
from stgcn_rt.export.validate import CRITERIA, compare
from stgcn_rt.files import atomic_output
from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def windows(seq_len: int, stride: int, offset: int) -> np.ndarray:
    return np.concatenate([skeleton_windows(k[offset:], seq_len, stride) for _, k in sorted(real_skeletons().items())])


def measure(checkpoint: str, work: Path, seq_len: int, calib_stride: int, eval_stride: int) -> list[dict]:
    loaded = load_checkpoint(checkpoint)
    calibration, evaluation = windows(seq_len, calib_stride, 0), windows(seq_len, eval_stride, 3)
    fp32, _ = export_onnx(loaded, work / "fp32.onnx", ExportOptions(seq_len=seq_len), validate=False)
    fp16, _ = export_onnx(loaded, work / "fp16.onnx", ExportOptions(seq_len=seq_len, precision="fp16"),
                          validate=False)
    int8 = quantize_int8(fp32, work / "int8.onnx", calibration)
    int8_ort = quantize_int8(fp32, work / "int8-ort.onnx", calibration, target="onnxruntime")
    int8_ort_kept = quantize_int8(fp32, work / "int8-ort-bn.onnx", calibration, target="onnxruntime",
                                  fold_batchnorms=False)
    rows = []
    with TorchClassifier(loaded) as reference:
        expected = reference.logits(evaluation)
        for precision, form, path in (("fp32", "", fp32), ("fp16", "", fp16), ("int8", "tensorrt", int8),
                                      ("int8", "onnxruntime", int8_ort),
                                      ("int8", "onnxruntime, BatchNorm kept", int8_ort_kept)):
            with OnnxClassifier(path) as candidate:
                result = compare(expected, candidate.logits(evaluation), "real windows", CRITERIA[precision])
            rows.append({"checkpoint": Path(checkpoint).name, "note": loaded.metadata.get("note", ""),
                         "precision": precision, "int8_target": form or None, **result.to_dict(),
                         "calibration_windows": len(calibration) if precision == "int8" else None})
            print(f"{Path(checkpoint).name} {precision} {form}: {result.line()}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoints to measure (a trained one first)")
    parser.add_argument("--seq-len", type=int, default=150, help="frames per window")
    parser.add_argument("--calib-stride", type=int, default=10, help="frames between the calibration windows")
    parser.add_argument("--eval-stride", type=int, default=6, help="frames between the evaluation windows")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the report")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for checkpoint in args.checkpoints:
            folder = Path(work) / Path(checkpoint).stem
            folder.mkdir()
            rows.extend(measure(checkpoint, folder, args.seq_len, args.calib_stride, args.eval_stride))
    date = time.strftime("%Y-%m-%d")
    report = {"date": date, "device": f"CPU ({platform.processor() or platform.machine()}), ONNX Runtime",
              "command": "python scripts/measure_precision.py " + " ".join(args.checkpoints), "seq_len": args.seq_len,
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out / "precision-cpu.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# fp16 and INT8 vs fp32 PyTorch, {date}", "", f"Device: {report['device']}. "
             f"Command: `{report['command']}`.", "",
             "| checkpoint | precision | windows | top-1 agreement | max prob diff | max logit diff | pass |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        precision = r["precision"] + (f" ({r['int8_target']} form)" if r["int8_target"] else "")
        lines.append(f"| {r['checkpoint']} | {precision} | {r['windows']} | {r['top1_agreement']:.1%} | "
                     f"{r['max_prob_diff']:.2e} | {r['max_logit_diff']:.2e} | {'yes' if r['passed'] else 'no'} |")
    with atomic_output(args.out / "precision-cpu.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/precision-cpu.{{json,md}}")


if __name__ == "__main__":
    main()
