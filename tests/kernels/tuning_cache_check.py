"""Ask the TMA temporal kernel's autotuner for a tuning through Triton's disk cache, on a machine
without a GPU: Triton's own cache code runs against a stand-in active driver that names an sm_90
target, and timing the candidates is a stand-in that picks the third. Prints one JSON line:
whether the cache answered, how often the candidates were timed, which candidate the choice is
(None for a copy) and whether it has its pre_hook. Run twice on one TRITON_CACHE_DIR by
tests/model/test_triton_tuning.py, in subprocesses, because the interpreter those tests use must
not be on here."""

from __future__ import annotations

import json

from triton.backends.compiler import GPUTarget
from triton.runtime import driver

from stgcn_rt.kernels import ops as kernels


class Hopper:
    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", 90, 32)


def main() -> None:
    driver.set_active(Hopper())
    tuner = kernels._temporal_conv_tma_kernel
    tuning_key = (7, 256, 256, 0, 1, 0, 0, "torch.float16")
    benched = []

    def bench() -> None:
        benched.append(1)
        tuner.configs_timings = {c: [float(i != 2)] for i, c in enumerate(tuner.configs)}
        tuner.cache[tuning_key] = tuner.configs[2]

    hit = tuner.check_disk_cache(tuning_key, tuner.configs, bench)
    choice = tuner.cache[tuning_key]
    same = [i for i, c in enumerate(tuner.configs) if c is choice]  # the candidate object itself, not a copy
    print(json.dumps({"hit": hit, "benched": len(benched), "candidate": same[0] if same else None,
                      "hooked": choice.pre_hook is kernels._set_tma_blocks}))


if __name__ == "__main__":
    main()
