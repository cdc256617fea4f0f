"""Agreement of the Triton kernels, fp16 and with fp8 temporal convolutions (``fp8_temporal``),
with the fp32 model on the CPU, on every shipped real window; CUDA graphs, batches of 8 and one
window alone. Prints a line per checkpoint and form.

    python scripts/measure_fp8_agreement.py trained.pt demo.pt
(trained.pt from scripts/train_tiny_checkpoint.py; demo.pt from stgcn-rt init-demo)
"""

from __future__ import annotations

import sys

import numpy as np

from stgcn_rt.data import real_windows
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier


def main(checkpoints: list[str]) -> None:
    windows = real_windows()
    for ckpt in checkpoints:
        with TorchClassifier(ckpt) as reference:
            p_ref, l_ref = reference.predict(windows), reference.logits(windows)
        decided = np.abs(p_ref[:, 0] - p_ref[:, 1]) > 2e-3  # top-1 is only defined where fp32 is not a tie
        for fp8 in (False, True):
            with TorchClassifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, triton_kernels=True,
                                 fp8_temporal=fp8) as model:
                p = np.concatenate([model.predict(windows[i:i + 8]) for i in range(0, len(windows), 8)])
                logits = np.concatenate([model.logits(windows[i:i + 8]) for i in range(0, len(windows), 8)])
                single = model.predict(windows[3:4])
            print(f"{ckpt} fp8={fp8}: windows {len(windows)} max prob diff {np.abs(p - p_ref).max():.2e} "
                  f"max logit diff {np.abs(logits - l_ref).max():.2e} (logits up to {np.abs(l_ref).max():.2f}) "
                  f"top1 {(p.argmax(1) == p_ref.argmax(1))[decided].mean():.4f} "
                  f"batch1-vs-8 {np.abs(single - p[3:4]).max():.1e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
