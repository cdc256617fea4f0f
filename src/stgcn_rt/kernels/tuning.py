"""How the GPU kernels choose their tiles: candidates, pruning, timing, and the choice kept on disk.

A tuned kernel times its candidate tiles once per (size class, layer shape) and keeps the choice
in Triton's cache directory, so a restart neither compiles nor times again. A first start is
mostly compiling: Triton compiles each candidate when it first times it, one after another, so
:func:`autotune` compiles them all in threads before the timing starts (Triton's compiler runs
outside Python's global interpreter lock for most of a compilation).
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import triton
from triton.runtime import driver

from stgcn_rt.errors import StgcnError

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
#: how long each candidate is timed, in ms of CUDA-graph replays (Triton's default is 20): on an
#: H100, 2 instead of 10 made a first start 26-31 s shorter and chose tiles as well (in as many keys
#: differently from a 10-ms tuning as two 10-ms tunings differ from each other)
TIMING_MS = 2
#: the environment variable that sets :func:`compile_threads`
COMPILE_THREADS_VARIABLE = "STGCN_RT_COMPILE_THREADS"


def tile_configs(sizes: list[tuple[int, int, int, int, int]], pipelined_flag: bool = False,
                 pre_hook: Callable[[dict], None] | None = None) -> list[triton.Config]:
    """Candidates from ``sizes``, each (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages).
    ``pipelined_flag``: the kernel takes a PIPELINED constexpr, set where a size has pipeline stages;
    ``pre_hook``: called with the launch's arguments before each launch of a candidate."""
    if INTERPRETED:  # one large tile: the interpreter cannot time candidates, and runs each program in Python
        sizes = [(128, 256, 64, 4, 1)]
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k,
                           **({"PIPELINED": s > 1} if pipelined_flag else {})},
                          num_warps=w, num_stages=s, pre_hook=pre_hook)
            for m, n, k, w, s in sizes]


def prune_tiles(configs: list[triton.Config], named_args: dict, **constants: object) -> list[triton.Config]:
    """Drop tiles wider than the layer's output or input channels, down to the narrowest tiles (the
    first block's three input channels still get every tile of the narrowest depth to choose from),
    and tiles deeper than 128 values (256 with fp8 operands: the same 256 bytes of a row)."""
    values = {**named_args, **constants}  # constexprs come as keywords in some Triton versions
    width, depth = values["C_OUT"], values.get("C_IN", values.get("C"))
    deepest = 256 if values.get("FP8") else 128
    narrowest = min(c.kwargs["BLOCK_N"] for c in configs), min(c.kwargs["BLOCK_K"] for c in configs)
    return [c for c in configs if c.kwargs["BLOCK_N"] <= max(width, narrowest[0])
            and c.kwargs["BLOCK_K"] <= min(max(depth, narrowest[1]), deepest)]


def autotune(sizes: list[tuple[int, int, int, int, int]], key: list[str], pipelined_flag: bool = False,  # noqa: ANN201
             pre_hook: Callable[[dict], None] | None = None):
    """Triton's autotuner over ``sizes``, keyed by ``key``.

    Candidates are timed inside a CUDA graph (short runs): at batch 1 a kernel takes a few
    microseconds, less than its launch from Python, so timing launches one by one ranks the
    host's overhead instead of the kernels (it chose a tile twice as slow as the best for the first
    block's graph convolution). Where this Triton keeps tunings on disk, the choice is kept there,
    also for a kernel whose candidates have a ``pre_hook``, and on a miss the candidates are
    compiled in threads before they are timed."""
    options: dict[str, object] = {"prune_configs_by": {"early_config_prune": prune_tiles}}
    accepted = inspect.signature(triton.autotune).parameters
    if "do_bench" in accepted:
        options["do_bench"] = functools.partial(triton.testing.do_bench_cudagraph, rep=TIMING_MS)
    if "cache_results" in accepted:
        options["cache_results"] = True
    tune = triton.autotune(configs=tile_configs(sizes, pipelined_flag, pre_hook), key=key, **options)
    if "cache_results" not in accepted:
        return tune
    return lambda fn: _tune_through_disk_cache(tune(fn))


def _unhooked(config: triton.Config) -> triton.Config:
    bare = copy.copy(config)
    bare.pre_hook = None
    return bare


def _tune_through_disk_cache(tuner: Any) -> Any:  # Triton's Autotuner, untyped
    """Wrap Triton's disk-cache check of ``tuner``: on a miss, compile the candidates in threads
    before they are timed, and keep the choice also where the candidates have a pre_hook.

    Triton writes no choice to disk for a kernel whose candidates have a pre_hook (a hook cannot be
    stored as JSON), so it was timed again at every process start. Our hooks only hand the
    candidate's tile shapes to the tensor descriptors, so a candidate is known by its parameters
    alone: the cache is shown the candidates without their hook, and the choice it returns is
    mapped back to the one with it."""
    triton_check, triton_run = tuner.check_disk_cache, tuner.run
    launch: list[tuple[tuple, dict]] = []  # the arguments of the launch being tuned

    def run(*args: Any, **kwargs: Any) -> Any:
        launch.append((args, kwargs))
        try:
            return triton_run(*args, **kwargs)
        finally:
            launch.pop()

    def check_disk_cache(tuning_key: tuple, configs: list[triton.Config], bench_fn: Callable[[], None]) -> bool:
        hooked = any(c.pre_hook for c in configs)

        def compile_then_bench() -> None:
            if launch:
                compile_candidates(tuner, configs, *launch[-1])
            bench_fn()
            if hooked:
                tuner.configs_timings = {_unhooked(c): t for c, t in tuner.configs_timings.items()}

        if not hooked:
            return triton_check(tuning_key, configs, compile_then_bench)
        by_name = {str(c): c for c in configs}
        hit = triton_check(tuning_key, [_unhooked(c) for c in configs], compile_then_bench)
        tuner.cache[tuning_key] = by_name[str(tuner.cache[tuning_key])]
        return hit

    tuner.run, tuner.check_disk_cache = run, check_disk_cache
    return tuner


def compile_threads() -> int:
    """How many candidates may compile at once: ``$STGCN_RT_COMPILE_THREADS``, else the CPUs this
    process may run on. Each compilation holds its own LLVM module, so a device short of memory
    (a Jetson running the pipeline) may want fewer."""
    asked = os.environ.get(COMPILE_THREADS_VARIABLE)
    if asked is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not asked.strip().isdigit() or int(asked) < 1:
        raise StgcnError(f"{COMPILE_THREADS_VARIABLE}={asked!r}: give a whole number of threads, 1 or more "
                         "(1 compiles the Triton kernels' candidate tiles one after another)")
    return int(asked)


def compile_candidates(tuner: Any, configs: list[triton.Config], args: tuple, kwargs: dict) -> None:
    """Compile each of ``configs`` for the launch ``tuner.run(*args, **kwargs)``, in threads, so that
    timing them finds them compiled.

    A compilation that fails here is left to the timing, which compiles that candidate again and
    handles the failure as Triton does (a candidate that does not fit the GPU is ruled out)."""
    threads = min(len(configs), compile_threads())
    if threads < 2:
        return
    jit = tuner.fn
    device = driver.active.get_current_device()
    jit.device_caches[device]  # noqa: B018 (created here, not by several threads at once)

    def compile_one(config: triton.Config) -> None:
        driver.active.set_current_device(device)  # a thread's CUDA device is its own
        meta = {**kwargs, **config.all_kwargs(), "warmup": True}
        try:
            jit.run(*_candidate_args(tuner, config, args, meta), **meta)
        except Exception:  # noqa: BLE001, S110 (see the docstring)
            pass

    with ThreadPoolExecutor(threads, thread_name_prefix="triton-compile") as pool:
        list(pool.map(compile_one, configs))


def _candidate_args(tuner: Any, config: triton.Config, args: tuple, meta: dict) -> tuple:
    """The launch's arguments as ``config`` launches them. Where it has a pre_hook (the TMA kernel's,
    which sets the tensor descriptors' tile shapes), the hook gets copies of the descriptors, which
    candidates compiled at the same time would otherwise share."""
    if config.pre_hook is None:
        return args
    from triton.tools.tensor_descriptor import TensorDescriptor

    own = tuple(copy.copy(a) if isinstance(a, TensorDescriptor) else a for a in args)
    config.pre_hook({**dict(zip(tuner.arg_names, own)), **meta})
    return own
