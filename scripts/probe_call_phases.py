"""Where a batch-1 call of the Triton-kernel classifier spends its time on this GPU host, and what the
last temporal convolution pooling its own rows (``pool_in_epilogue``), fp8 operands for the temporal
convolutions (``fp8``) or a graph that copies the window in before its first kernel instead of that
kernel reading it from the pinned buffer in place (``*_copied_in``) change, measured interleaved in
one process: ``predict`` on a host window (what a user calls and ``stgcn-rt bench`` times),
``predict`` plus a device synchronisation (what the bench timed before session 12), one replay of the
captured graph plus its synchronisation (no host copies), one replay with the host spinning until the
first probability arrives in the pinned output instead (what a completion flag would cost, timing
only), copying a window into the pinned input, the graph replayed back to back (the GPU's pass), and
batch-512 throughput. Writes <out>/call-phases-<gpu>-<date>.json, as profile_kernels.py writes its report.

    python scripts/probe_call_phases.py [--calls 3000] [--rounds 2] [--forms pool_in_epilogue,fp8] [--persons 1]
        [--out .]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script

from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends import torch_runner
from stgcn_rt.runtime.backends.torch_runner import PROBABILITIES, TorchClassifier

#: form name -> (pool_in_epilogue, fp8_temporal, in place: the first kernel reads batch 1 from the pinned input)
FORMS = {"pool_in_epilogue": (True, False, True), "pooling_kernel": (False, False, True), "fp8": (True, True, True),
         "pool_in_epilogue_copied_in": (True, False, False), "fp8_copied_in": (True, True, False)}


def median_us(step: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def phases(classifier: TorchClassifier, window: np.ndarray, batch: np.ndarray, calls: int) -> dict[str, float]:
    sync = torch.cuda.synchronize
    classifier.predict(window)
    for _ in range(100):
        classifier.predict(window)
    captured = next(g for key, g in classifier._graphs.items() if key[:2] == (True, 1))
    graph, host_in, first_probability = captured.graph, captured._host_in, captured._host_out[0, PROBABILITIES]

    def replay_and_spin() -> None:
        first_probability[0] = np.nan
        graph.replay()
        while np.isnan(first_probability[0]):  # written by the pass's last kernel
            pass

    figures = {"predict_us": median_us(lambda: classifier.predict(window), calls),
               "predict_and_sync_us": median_us(lambda: (classifier.predict(window), sync()), calls),
               "replay_and_sync_us": median_us(lambda: (graph.replay(), sync()), calls),
               "replay_and_spin_us": median_us(replay_and_spin, calls),
               "window_copy_us": median_us(lambda: np.copyto(host_in[:1], window), calls)}
    start = time.perf_counter()
    for _ in range(1000):
        graph.replay()
    sync()
    figures["back_to_back_pass_us"] = (time.perf_counter() - start) * 1e3
    classifier.predict(batch)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        classifier.predict(batch)
        count += 1
    figures["batch_512_windows_per_s"] = count * len(batch) / (time.perf_counter() - start)
    return {k: round(v, 1) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per median")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the forms")
    parser.add_argument("--forms", default="pool_in_epilogue,pooling_kernel",
                        help=f"comma-separated, of: {', '.join(FORMS)}")
    parser.add_argument("--persons", type=int, default=1, help="M of the windows")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    window = rng.random((1, 3, 150, 33, args.persons), dtype=np.float32)
    batch = rng.random((512, 3, 150, 33, args.persons), dtype=np.float32)
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    forms = {}
    for name in args.forms.split(","):
        pooled, fp8, in_place = FORMS[name]
        classifier = TorchClassifier(loaded, device="cuda", precision="fp16", cuda_graphs=True, triton_kernels=True,
                                     fp8_temporal=fp8)
        classifier.model.pool_in_epilogue = pooled
        kept = torch_runner.IN_PLACE_MAX_BATCH, torch_runner.IN_PLACE_MAX_PERSONS
        torch_runner.IN_PLACE_MAX_BATCH, torch_runner.IN_PLACE_MAX_PERSONS = (1, args.persons) if in_place else (0, 0)
        classifier.predict(window)  # captures the batch-1 graph read in place or copied in, as the form says
        torch_runner.IN_PLACE_MAX_BATCH, torch_runner.IN_PLACE_MAX_PERSONS = kept
        forms[name] = classifier
    results = []
    for round_ in range(args.rounds):
        for name, classifier in forms.items():
            figures = phases(classifier, window, batch, args.calls)
            results.append({"form": name, "round": round_} | figures)
            print(results[-1], flush=True)
    write_gpu_report("call-phases", f"python scripts/probe_call_phases.py --calls {args.calls} --rounds {args.rounds} "
                                    f"--forms {args.forms} --persons {args.persons}",
                     f"medians of single calls (batch 1, M={args.persons}); back_to_back_pass_us: the batch-1 "
                     "graph replayed 1,000 times, per replay; replay_and_spin_us: the host spins until the first "
                     "probability (set to NaN before) arrives in the pinned output, a stand-in for a completion "
                     "flag; window_copy_us: np.copyto of one window into the pinned input; the forms interleaved "
                     "in one process",
                     results, Path(args.out))


if __name__ == "__main__":
    main()
