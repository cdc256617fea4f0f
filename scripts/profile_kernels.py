"""GPU time per kernel of one forward pass (no CUDA graph), from the PyTorch profiler: where a
batch's time goes, for the project's Triton kernels and the compiled optimized rewrite. Writes
<out>/kernel-profile-<gpu>-<date>.json.

    python scripts/profile_kernels.py [--batch 1,512] [--backends triton-kernels,optimized-compile] [--out .]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from triton.testing import do_bench_cudagraph

from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.model.triton_model import TritonSTGCN
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

BACKENDS = {"triton-kernels": {"triton_kernels": True}, "optimized-compile": {"optimize": True, "compile": True}}
RUNS = 10


def kernel_times(model: torch.nn.Module, batch: int) -> dict:
    """Mean GPU microseconds per forward pass, per kernel name (launches per pass alongside)."""
    x = torch.rand(batch, 3, 150, 33, 1, device="cuda")
    with torch.inference_mode():
        for _ in range(5):  # compile, autotune, warm the allocator
            model(x)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(RUNS):
                model(x)
            torch.cuda.synchronize()
    rows = sorted(((e.key, e.count // RUNS, e.device_time_total / RUNS) for e in prof.key_averages()
                   if e.device_time_total > 0), key=lambda r: -r[2])
    return {"gpu_us_per_pass": round(sum(r[2] for r in rows), 1),
            "kernels": [{"name": name[:120], "launches": n, "us": round(us, 1)} for name, n, us in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", default="1,512", help="batch sizes, comma-separated")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"subset of {', '.join(BACKENDS)}")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    results = []
    for name in args.backends.split(","):
        classifier = TorchClassifier(loaded, device="cuda", precision="fp16", **BACKENDS[name])
        for batch in (int(b) for b in args.batch.split(",")):
            results.append({"backend": name, "batch": batch, **kernel_times(classifier.model, batch)})
            print(f"{name} batch {batch}: {results[-1]['gpu_us_per_pass']} us of kernels per pass", flush=True)
        classifier.close()
    write_gpu_report("kernel-profile", "python scripts/profile_kernels.py --batch " + args.batch + " --backends "
                     + args.backends, "sums of kernel times; the compiled rewrite runs its two streams concurrently, "
                     "so its wall time is lower than its sum", results, Path(args.out))


def demo_triton_network(device: str) -> TritonSTGCN:
    """The demo checkpoint's model on the Triton kernels, blocks in fp16, TMA loads on: the layers the
    probe scripts take apart (on the CPU under ``TRITON_INTERPRET=1``, which emulates the loads)."""
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    net = TritonSTGCN(loaded.model.eval(), tma_loads=True).to(device)
    net.set_block_dtype(torch.float16)
    return net


def graph_us(fn: Callable[[], object]) -> float:
    """``fn``'s time in µs (0.01), replayed inside a CUDA graph for 50 ms (``do_bench_cudagraph``):
    how the probe scripts time a kernel at batch 1, where a launch from Python would take longer."""
    return round(do_bench_cudagraph(fn, rep=50) * 1000, 2)


def write_gpu_report(kind: str, command: str, note: str, results: list[dict], out: Path) -> Path:
    """``out``/<kind>-<gpu>-<date>.json: the results with the GPU, torch, date, command and a note."""
    gpu = torch.cuda.get_device_name()
    report = {"device": gpu, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": command, "note": note, "results": results}
    path = out / f"{kind}-{re.sub(r'[^a-z0-9]+', '-', gpu.lower()).strip('-')}-{time.strftime('%Y-%m-%d')}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
