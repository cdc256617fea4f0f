"""One start of the Triton-kernel classifier in its own process, for tests/runtime/test_gpu.py:
classifies the shipped real windows one at a time, saves the probabilities to the .npy file named
second on the command line (after the checkpoint), and prints how often the autotuner timed
candidate tiles, per kernel, as one JSON line."""

from __future__ import annotations

import collections
import json
import sys

import numpy as np
import triton.runtime.autotuner as autotuner

from stgcn_rt.data import real_windows
from stgcn_rt.runtime import load_classifier


def main() -> None:
    checkpoint, probabilities = sys.argv[1:3]
    timed: collections.Counter[str] = collections.Counter()
    bench = autotuner.Autotuner._bench

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN202
        timed[self.base_fn.__name__] += 1
        return bench(self, *args, **kwargs)

    autotuner.Autotuner._bench = counted
    windows = real_windows()
    with load_classifier(checkpoint, device="cuda", precision="fp16", cuda_graphs=True, kernels=True) as model:
        np.save(probabilities, np.concatenate([model.predict(windows[i:i + 1]) for i in range(len(windows))]))
    print(json.dumps(dict(timed)))


if __name__ == "__main__":
    main()
