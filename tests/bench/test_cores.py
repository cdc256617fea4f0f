"""The cores each part of a pipeline run keeps busy, sampled while its decoding processes run."""

import multiprocessing
import time

import pytest

from stgcn_rt.bench.cores import PARTS, CoreSampler

pytest.importorskip("psutil")


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_each_part_is_the_cpu_of_its_processes_while_the_decoders_run():
    """A 'decoder' child spinning is (up to) a core of decoding; a 'pose' child sleeping is next to
    none and the sampling process less; the host counts at least the spinning child."""
    context = multiprocessing.get_context("spawn")
    pose = context.Process(target=time.sleep, args=(3.0,), name="blazepose", daemon=True)
    decoder = context.Process(target=_spin, args=(2.0,), name="decoder-0", daemon=True)
    with CoreSampler(interval=0.1) as sampler:
        pose.start()
        time.sleep(0.3)
        decoder.start()
        decoder.join()
        pose.terminate()
        pose.join()
    cores = sampler.cores()
    assert cores is not None and set(cores) == set(PARTS)
    # a busy machine (CI) gives the spinning child less than its core, never more
    assert 0.2 < cores["decoding"] < 1.1
    assert cores["pose"] < 0.1 and cores["pipeline"] < cores["decoding"]
    assert cores["host"] > 0.9 * cores["decoding"]


def test_no_span_without_decoding_processes():
    with CoreSampler(interval=0.05) as sampler:
        time.sleep(0.2)
    assert len(sampler.samples) >= 2 and sampler.cores() is None
