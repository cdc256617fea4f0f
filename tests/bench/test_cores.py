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
    """A 'decoder' child spinning on a core is one core of decoding; a 'pose' child sleeping and the
    sampling process idle are next to none; the host counts at least the spinning core."""
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
    assert 0.7 < cores["decoding"] < 1.1
    assert cores["pose"] < 0.2 and cores["pipeline"] < 0.3
    assert cores["host"] > 0.7


def test_no_span_without_decoding_processes():
    with CoreSampler(interval=0.05) as sampler:
        time.sleep(0.2)
    assert len(sampler.samples) >= 2 and sampler.cores() is None
