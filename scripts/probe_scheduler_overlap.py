"""How many simulated cameras the batching scheduler serves with and without overlapping one
batch's host work with the GPU's work on the other (``BatchScheduler(overlap=...)``), the two
forms interleaved per camera count in one process, on the Triton kernels with CUDA graphs (the
camera test of ``stgcn-rt bench``: 25 fps, a window every ``--stride`` frames, p99 under 100 ms
and nothing dropped). Writes <out>/scheduler-overlap-<gpu>-<date>.json, as profile_kernels.py
writes its report.

    python scripts/probe_scheduler_overlap.py [--cameras 1536,1792,2048] [--seconds 3] [--out .]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script

from stgcn_rt.bench.cameras import scheduler_design
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier
from stgcn_rt.runtime.heap import startup_objects_frozen
from stgcn_rt.runtime.modes import FAST_MODES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", default="1536,1792,2048", help="camera counts, comma-separated")
    parser.add_argument("--stride", type=int, default=5, help="a window every STRIDE frames per camera")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per camera count and form")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    classifier = TorchClassifier(loaded, device="cuda", seq_len=150, persons=1, **FAST_MODES["kernels"])
    classifier.warm_up(256)
    windows = np.random.default_rng(0).random((64, 3, 150, 33, 1), dtype=np.float32)
    results = []
    with startup_objects_frozen():  # as stgcn-rt bench runs its camera test
        for cameras in (int(c) for c in args.cameras.split(",")):
            for overlap in (True, False):
                result = scheduler_design(classifier, cameras, args.stride, args.seconds, windows, overlap=overlap)
                results.append({"cameras": cameras, "overlap": overlap} | result)
                print(results[-1], flush=True)
    write_gpu_report("scheduler-overlap", f"python scripts/probe_scheduler_overlap.py --cameras {args.cameras} "
                     f"--stride {args.stride} --seconds {args.seconds}",
                     "the camera test's scheduler design (max_batch 256, max_wait 10 ms), Triton kernels + CUDA "
                     "graphs fp16, M=1; per camera count the overlapping worker, then one batch at a time; "
                     "startup objects frozen out of the garbage collector as in stgcn-rt bench",
                     results, Path(args.out))


if __name__ == "__main__":
    main()
