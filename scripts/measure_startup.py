"""How long the Triton-kernel classifier takes to start in a new process on this GPU, as
`stgcn-rt run --fast` starts it: imports, the demo checkpoint loaded, every batch bucket up to
--max-batch compiled, tuned and captured (``warm_up``), one window classified; then its batch-1
``predict`` p50 and its windows/s at the largest bucket. Each form starts from an empty Triton
cache, then restarts on it. Forms: ``project`` is the project's code; ``tma_choice_not_kept``
leaves the TMA temporal kernel's tile choice to Triton alone, which stores none for candidates with
a pre_hook, so it times them again at every start; ``specialized`` lets Triton specialize the tuned
kernels' batch-dependent integers as it does by default, so each batch size that makes one of them
1 or a multiple of 16 compiles every candidate again; ``compiled_one_by_one`` leaves the
candidates to be compiled as Triton times them, one after another, instead of in threads before;
``timed_10ms`` times each candidate in CUDA-graph replays of about 10 ms instead of the project's 2;
``fp8`` is the project's code with the temporal convolutions on fp8 operands (``--fast kernels-fp8``).
The forms' restarts take turns. Reports each start's tile choices.
Counts the autotuner's candidate timings per kernel, and the time spent compiling candidates in
threads. Writes <out>/startup-max-batch-<N>-<gpu>-<date>.json, as profile_kernels.py writes its
report.

    python scripts/measure_startup.py [--forms project,specialized] [--max-batch 32] [--restarts 1] [--out .]
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()


FORMS = ("project", "tma_choice_not_kept", "specialized", "compiled_one_by_one", "timed_10ms", "fp8")


def start_once(max_batch: int, form: str) -> dict:
    """The child process: start the classifier, return its phases, speed and candidate timings."""
    import numpy as np
    import triton.runtime.autotuner as autotuner

    from stgcn_rt.model import triton_kernels as kernels
    from stgcn_rt.model import triton_tuning
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
    from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

    tuners = (kernels._graph_conv_kernel, kernels._temporal_conv_kernel, kernels._temporal_conv_tma_kernel)
    if form == "tma_choice_not_kept":  # back to Triton's own check_disk_cache, which skips pre_hooks
        del kernels._temporal_conv_tma_kernel.check_disk_cache
    if form == "compiled_one_by_one":  # as on a machine with one CPU
        triton_tuning.compile_threads = lambda: 1
    if form == "timed_10ms":  # each candidate timed in CUDA-graph replays of about 10 ms (before session 18)
        import triton.testing

        for tuner in tuners:
            tuner.__dict__["do_bench"] = functools.partial(triton.testing.do_bench_cudagraph, rep=10)
    threads, compiling = triton_tuning.compile_threads(), [0.0]
    compile_candidates = triton_tuning.compile_candidates

    def timed_compile(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        began = time.perf_counter()
        compile_candidates(*args, **kwargs)
        compiling[0] += time.perf_counter() - began

    triton_tuning.compile_candidates = timed_compile
    if form == "specialized":  # Triton's default for every integer argument, set before the first launch
        for tuner in tuners:
            for param in tuner.fn.params:
                param.do_not_specialize = param.do_not_specialize_on_alignment = False
    timings: collections.Counter[str] = collections.Counter()
    bench = autotuner.Autotuner._bench

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN202
        timings[self.base_fn.__name__] += 1
        return bench(self, *args, **kwargs)

    autotuner.Autotuner._bench = counted
    imported = time.perf_counter()
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    classifier = TorchClassifier(loaded, device="cuda", precision="fp16", cuda_graphs=True, triton_kernels=True,
                                 fp8_temporal=form == "fp8")
    classifier.warm_up(max_batch)
    warm = time.perf_counter()
    rng = np.random.default_rng(0)
    window, batch = (rng.random((n, 3, 150, 33, 1), dtype=np.float32) for n in (1, max_batch))
    classifier.predict(window)
    ready = time.perf_counter()
    calls = []
    for _ in range(2000):
        began = time.perf_counter()
        classifier.predict(window)
        calls.append(time.perf_counter() - began)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < 2.0:
        classifier.predict(batch)
        count += 1
    tiles = {t.base_fn.__name__: {str(key): str(config) for key, config in t.cache.items()} for t in tuners}
    return {"import_s": round(imported - STARTED, 2), "warm_up_s": round(warm - imported, 2),
            "ready_s": round(ready - STARTED, 2), "candidates_timed": dict(timings), "compile_threads": threads,
            "compiling_in_threads_s": round(compiling[0], 2),
            "batch_1_p50_ms": round(float(np.median(calls)) * 1e3, 4),
            f"batch_{max_batch}_windows_per_s": round(count * max_batch / (time.perf_counter() - began)),
            "tiles": {name: chosen for name, chosen in tiles.items() if chosen}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forms", default=",".join(FORMS), help="comma-separated, from: " + ", ".join(FORMS))
    parser.add_argument("--max-batch", type=int, default=32, help="largest batch bucket warmed up (run's default)")
    parser.add_argument("--restarts", type=int, default=1, help="starts on the filled cache, per form")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    parser.add_argument("--child", choices=FORMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(start_once(args.max_batch, args.child)))
        return
    forms = args.forms.split(",")
    if not set(forms) <= set(FORMS):
        parser.error(f"--forms: choose from {', '.join(FORMS)}")
    results = []
    caches = {form: tempfile.mkdtemp(prefix="triton-cache-") for form in forms}
    for start in range(1 + args.restarts):  # the forms' restarts take turns, so that a drift of the GPU's speed
        for form in forms:                   # over the run is not read as the forms' difference
            began = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--child", form, "--max-batch", str(args.max_batch)],
                                  env=os.environ | {"TRITON_CACHE_DIR": caches[form]}, capture_output=True, text=True,
                                  check=True)
            child = json.loads(done.stdout.splitlines()[-1])
            results.append({"form": form, "start": "first (empty cache)" if start == 0 else f"restart {start}",
                            "process_s": round(time.perf_counter() - began, 2)} | child)
            print({k: v for k, v in results[-1].items() if k != "tiles"}, flush=True)
    from profile_kernels import write_gpu_report  # this folder's script, on the path when run as a script

    write_gpu_report(f"startup-max-batch-{args.max_batch}", f"python scripts/measure_startup.py --forms {args.forms} "
                     f"--max-batch {args.max_batch} --restarts {args.restarts}",
                     "each start a new process; process_s: its whole run (warm-up, then 2,000 batch-1 calls and 2 s "
                     "at the largest bucket), as the parent saw it; ready_s: from the child's first line to one window "
                     "classified; warm_up_s: compiling, tuning and capturing the batch buckets up to --max-batch; "
                     "candidates_timed: the autotuner's timings per kernel; compiling_in_threads_s: of warm_up_s, the "
                     "time spent compiling candidates in compile_threads threads before timing them; "
                     "batch_1_p50_ms: predict on a host window; tiles: the tile chosen per tuning key",
                     results, Path(args.out))


if __name__ == "__main__":
    main()
