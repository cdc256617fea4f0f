"""The Triton kernels' tuning: the tile choice kept on disk, the candidates compiled in threads.
The checks that need Triton's compiler run in subprocesses without the interpreter (conftest.py
sets TRITON_INTERPRET=1 in this one), against a stand-in sm_90 driver: no GPU needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", minversion="3.2")  # the kernels use its newer autotuner and TMA API

from stgcn_rt.errors import StgcnError  # noqa: E402
from stgcn_rt.kernels.tuning import COMPILE_THREADS_VARIABLE, compile_threads  # noqa: E402


def run_check(script: str, cache: Path) -> list[dict]:
    """Run a check script of this folder on the Triton cache ``cache``; its JSON lines."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"TRITON_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name(script))], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_restart_reuses_the_tma_kernels_tuning(tmp_path):
    """Triton stores no tuning for kernels whose candidates have a pre_hook; the TMA temporal
    kernel's is stored all the same, and a second process takes it, hook included, untimed."""
    first, restart = (run_check("tuning_cache_check.py", tmp_path)[-1] for _ in range(2))
    assert (first["hit"], first["benched"], restart["hit"], restart["benched"]) == (False, 1, True, 0)
    assert first["candidate"] == restart["candidate"] == 2
    assert first["hooked"] and restart["hooked"]
    assert len(list(tmp_path.rglob("_temporal_conv_tma_kernel.autotune.json"))) == 1


def test_candidates_are_compiled_in_threads_before_they_are_timed(tmp_path):
    """A first start compiles every candidate tile. Triton compiles each when it first times it, one
    after another; ours are all compiled, in worker threads, before the first is timed, each TMA
    candidate with its own descriptor tiles and the launch's descriptors left as they were."""
    if compile_threads() < 2:
        pytest.skip("one CPU: the candidates compile one after another")
    graph, temporal = run_check("candidate_compile_check.py", tmp_path)
    for seen in (graph, temporal):
        assert [c[:5] for c in seen["compiled"]] == seen["candidates"]
        assert len(seen["candidates"]) > 1
        assert len(seen["threads"]) > 1 and all(t.startswith("triton-compile") for t in seen["threads"])
    assert all(c[5] == [] for c in graph["compiled"])
    assert all(tiles == [[1, m, k], [k, n]] for _, _, m, n, k, tiles in temporal["compiled"])
    assert temporal["launch_tiles"] == [[1, 64, 64], [64, 64]]  # temporal_conv's placeholders


@pytest.mark.parametrize(("asked", "threads"), [("3", 3), ("1", 1)])
def test_the_compile_threads_can_be_set(monkeypatch, asked, threads):
    monkeypatch.setenv(COMPILE_THREADS_VARIABLE, asked)
    assert compile_threads() == threads


@pytest.mark.parametrize("asked", ["0", "two", "-1", ""])
def test_a_wrong_thread_count_is_refused_in_one_line(monkeypatch, asked):
    monkeypatch.setenv(COMPILE_THREADS_VARIABLE, asked)
    with pytest.raises(StgcnError, match=f"^STGCN_RT_COMPILE_THREADS={asked!r}: give a whole number of threads"):
        compile_threads()


def test_without_the_variable_every_cpu_of_the_process_compiles(monkeypatch):
    monkeypatch.delenv(COMPILE_THREADS_VARIABLE, raising=False)
    assert compile_threads() == len(os.sched_getaffinity(0))
