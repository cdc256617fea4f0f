"""GPU memory held by the PyTorch runner's CUDA graphs, one per power-of-two batch bucket up to
--max-batch, with the graphs sharing one memory pool (the default) and with a pool each
(``shared_graph_memory=False``); the same windows' probabilities from both, which must be equal.
Writes <out>/graph-memory-<gpu>-<date>.{json,md}.

    python scripts/measure_graph_memory.py [--max-batch 256] [--compile] [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stgcn_rt.data import real_windows
from stgcn_rt.model.checkpoint import LoadedModel, load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

MIB = 1024 * 1024


def measure(loaded: LoadedModel, windows: np.ndarray, max_batch: int, compile: bool, shared: bool
            ) -> tuple[dict[str, Any], np.ndarray]:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_reserved()
    start = time.perf_counter()
    classifier = TorchClassifier(loaded, device="cuda", precision="fp16", cuda_graphs=True, optimize=True,
                                 compile=compile, shared_graph_memory=shared, seq_len=150, persons=1)
    classifier.warm_up(max_batch)
    seconds = time.perf_counter() - start
    torch.cuda.empty_cache()  # drop the warm-up runs' cached blocks: what stays is held by the graphs
    reserved = torch.cuda.memory_reserved() - before
    probabilities = np.concatenate([classifier.predict(windows), classifier.predict(windows[:1])])
    row = {"shared_pool": shared, "compile": compile, "graphs": len(classifier._graphs),
           "reserved_mib": reserved / MIB, "warm_up_s": seconds}
    classifier.close()
    return row, probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (adds about a minute)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks")
    args = parser.parse_args()
    windows = real_windows().astype(np.float32)
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    rows, outputs = [], []
    for shared in (False, True):
        row, probabilities = measure(loaded, windows, args.max_batch, args.compile, shared)
        rows.append(row)
        outputs.append(probabilities)
        print(row, flush=True)
    difference = float(np.abs(outputs[0] - outputs[1]).max())
    gpu = torch.cuda.get_device_name()
    stem = f"graph-memory-{re.sub(r'[^a-z0-9]+', '-', gpu.lower()).strip('-')}-{time.strftime('%Y-%m-%d')}"
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gpu": gpu, "torch": torch.__version__,
           "command": "python scripts/measure_graph_memory.py " + f"--max-batch {args.max_batch}"
                      + (" --compile" if args.compile else "")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(
        {"environment": env, "rows": rows, "max_probability_difference": difference}, indent=2) + "\n")
    buckets = rows[0]["graphs"]
    lines = [f"# CUDA-graph memory: {gpu}", "",
             f"{env['date']}; torch {env['torch']}. Command: `{env['command']}`. Optimized model, fp16, "
             f"{'torch.compile, ' if args.compile else ''}one graph per batch bucket 1..{args.max_batch} "
             f"({buckets} graphs) with the host copies inside; memory PyTorch's allocator still reserves for "
             "the classifier after warm-up and emptying its cache (weights, graphs' pools, their buffers).", "",
             "| graphs' memory pool | reserved MiB | warm-up s |", "| --- | --- | --- |"]
    lines += [f"| {'one shared pool' if r['shared_pool'] else 'one pool per graph'} | {r['reserved_mib']:,.0f} | "
              f"{r['warm_up_s']:.1f} |" for r in rows]
    lines += ["", f"The same windows (batch 14 and batch 1) give probabilities that differ by at most "
                  f"{difference:.1e} between the two."]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / stem}.json and .md; max probability difference {difference:.1e}")


if __name__ == "__main__":
    main()
