"""GPU behaviour of the PyTorch runner and the scheduler. Run through the device tool; skipped here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import gpu_report

from stgcn_rt.runtime import load_classifier
from stgcn_rt.runtime.scheduler import BatchScheduler

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def cpu_reference(demo_models, real_windows):
    ckpt, _ = demo_models
    with load_classifier(ckpt) as model:
        return model.logits(real_windows)


def test_fp32_cuda_matches_cpu(demo_models, real_windows, cpu_reference):
    ckpt, _ = demo_models
    with load_classifier(ckpt, device="cuda") as model:
        logits = model.logits(real_windows)
    diff = float(np.abs(logits - cpu_reference).max())
    gpu_report("fp32 cuda vs cpu", max_logit_diff=diff)
    assert diff <= 1e-4


VARIANTS = [  # precision, options
    ("fp32", {"cuda_graphs": True}),
    ("fp16", {}),
    ("fp16", {"cuda_graphs": True}),
    ("fp32", {"cuda_graphs": True, "optimize": True}),
    ("fp16", {"cuda_graphs": True, "optimize": True}),
    ("fp16", {"cuda_graphs": True, "optimize": True, "parallel_streams": False, "compile": True}),
    ("fp16", {"cuda_graphs": True, "optimize": True, "compile": True}),
    ("fp16", {"kernels": True}),
    ("fp16", {"cuda_graphs": True, "kernels": True}),
    ("fp16", {"cuda_graphs": True, "kernels": True, "tma_loads": False}),
    ("fp16", {"cuda_graphs": True, "kernels": True, "fp8_temporal": True}),
]


@pytest.mark.parametrize(("precision", "options"), VARIANTS, ids=lambda v: str(v))
def test_fast_variants_agree_with_fp32(demo_models, real_windows, cpu_reference, precision, options):
    ckpt, _ = demo_models
    ref_p = torch.softmax(torch.from_numpy(cpu_reference), 1).numpy()
    with load_classifier(ckpt, device="cuda", precision=precision, **options) as model:
        probs = np.concatenate([model.predict(real_windows[:5]), model.predict(real_windows[5:])])
        again = model.predict(real_windows[:5])  # a captured graph replays the same result
        single = model.predict(real_windows[7:8])
    diff = float(np.abs(probs - ref_p).max())
    decided = np.abs(ref_p[:, 0] - ref_p[:, 1]) > 2e-3  # top-1 is only defined where fp32 is not a tie
    gpu_report(f"{precision} {options} vs fp32 cpu", max_prob_diff=diff,
           top1=float((probs.argmax(1) == ref_p.argmax(1))[decided].mean()), windows=len(probs))
    np.testing.assert_array_equal(again, probs[:5])
    assert np.abs(single - probs[7:8]).max() <= 2e-3  # batch 1 and batch 5+ kernels agree
    assert diff <= (1e-4 if precision == "fp32" else 1e-3)
    assert (probs.argmax(1) == ref_p.argmax(1))[decided].all()


@pytest.fixture(scope="module")
def loud_checkpoint(tmp_path_factory):
    """A reference-layout checkpoint whose last block's activations reach the hundreds (a pooling sum
    past fp16's range), with its fp32 CPU logits on real windows."""
    from helpers import loud_last_block, reference_state_dict

    from stgcn_rt.model.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path_factory.mktemp("loud") / "loud.pt"
    torch.save(reference_state_dict(), path)
    loaded = loud_last_block(load_checkpoint(path), 10)
    save_checkpoint(loaded.model, loaded.config, path)
    return path


LOUD_VARIANTS = [  # every fp16 path of the PyTorch runner
    {},
    {"cuda_graphs": True},
    {"compile": True},
    {"cuda_graphs": True, "optimize": True},
    {"cuda_graphs": True, "optimize": True, "compile": True},
    {"cuda_graphs": True, "kernels": True},
    {"cuda_graphs": True, "kernels": True, "fp8_temporal": True},
]


@pytest.mark.parametrize("options", LOUD_VARIANTS, ids=str)
def test_fp16_stays_finite_where_pooling_sums_pass_its_range(loud_checkpoint, real_windows, options):
    with load_classifier(loud_checkpoint) as fp32:
        expected = fp32.predict(real_windows)
    with load_classifier(loud_checkpoint, device="cuda", precision="fp16", **options) as model:
        probs = model.predict(real_windows)
    diff = float(np.abs(probs - expected).max())
    gpu_report(f"fp16 {options} on a checkpoint with loud last blocks", max_prob_diff=diff)
    assert np.isfinite(probs).all() and diff <= 1e-3


@pytest.mark.parametrize("options", [{"kernels": True}, {"optimize": True}], ids=str)
def test_graph_probabilities_are_the_softmax_of_its_logits(demo_models, real_windows, options):
    """With host windows a graph hands back the probabilities it computed on the GPU: the softmax of
    the logits it hands back, for batches the GPU kernels read in place and for batches copied in."""
    from stgcn_rt.runtime.cuda_graphs import IN_PLACE_MAX_BATCH
    from stgcn_rt.window import softmax

    ckpt, _ = demo_models
    large = np.concatenate([real_windows] * (IN_PLACE_MAX_BATCH // len(real_windows) + 2))
    with load_classifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, **options) as model:
        for windows in (real_windows[:3], large):
            logits, probs = model.logits(windows), model.predict(windows)
            assert probs.dtype == np.float32 and probs.shape == logits.shape
            np.testing.assert_allclose(probs, softmax(logits.astype(np.float64)), rtol=0, atol=1e-6)
        small = model.predict(real_windows[:3])
    assert len(large) > IN_PLACE_MAX_BATCH
    assert np.abs(small - probs[:3]).max() <= 2e-3  # in place (small bucket) and copied in agree


def test_kernels_refuse_host_windows_that_are_not_pinned(demo_models):
    from stgcn_rt.kernels.network import KernelNetwork
    from stgcn_rt.model.checkpoint import load_checkpoint

    model = KernelNetwork(load_checkpoint(demo_models[0]).model).cuda()
    with pytest.raises(ValueError, match="pinned"):
        model.scores(torch.zeros(1, 3, 150, 33, 1))


def test_kernels_read_pinned_windows_of_several_persons(demo_models, real_windows):
    """``scores`` reads pinned host windows in place (the classifier's graphs copy windows of several
    persons in, but the model's own method takes them): windows of five persons give, to the bit,
    what the same windows on the GPU give."""
    from stgcn_rt.kernels.network import KernelNetwork
    from stgcn_rt.model.checkpoint import load_checkpoint

    model = KernelNetwork(load_checkpoint(demo_models[0]).model).cuda()
    persons = torch.from_numpy(np.concatenate([real_windows[:6], real_windows[6:12]], axis=-1))  # M=2
    windows = torch.cat([persons] * 3, dim=-1)[..., :5].contiguous()  # (6, 3, 150, 33, 5)
    with torch.inference_mode():
        on_gpu = model.scores(windows.cuda())
        in_place = model.scores(windows.pin_memory())
    torch.testing.assert_close(in_place, on_gpu, rtol=0, atol=0)


def test_torch_input_on_the_gpu(demo_models, real_windows, cpu_reference):
    ckpt, _ = demo_models
    with load_classifier(ckpt, device="cuda") as model:
        logits = model.logits(torch.from_numpy(real_windows).cuda())
    assert np.abs(logits - cpu_reference).max() <= 1e-4


@pytest.mark.parametrize("options", [{}, {"optimize": True, "compile": True}, {"kernels": True},
                                     {"kernels": True, "fp8_temporal": True}],
                         ids=["graphs", "optimized-compile", "kernels", "kernels-fp8"])
def test_scheduler_on_the_gpu(demo_models, real_windows, options):
    ckpt, _ = demo_models
    rng = np.random.default_rng(0)
    windows = {c: real_windows[rng.integers(len(real_windows))] * rng.uniform(0.5, 1) for c in range(64)}
    with load_classifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, **options) as model:
        with BatchScheduler(model, max_batch=32, max_wait_ms=10) as scheduler:
            futures = {c: scheduler.submit(c, w.astype(np.float32)) for c, w in windows.items()}
        worst = 0.0
        for c, future in futures.items():
            single = model.predict(windows[c][None].astype(np.float32))[0]
            worst = max(worst, float(np.abs(future.result().probabilities - single).max()))
    gpu_report(f"scheduler fp16 graphs {options} vs single predict", max_prob_diff=worst,
           batches=scheduler.stats.batches, batch_sizes=dict(scheduler.stats.batch_sizes))
    assert scheduler.stats.totals()["completed"] == 64
    sizes = set(scheduler.stats.batch_sizes)
    assert sizes == {1 << (s.bit_length() - 1) for s in sizes}  # every batch fills its bucket: no padding
    assert worst <= 2e-3  # fp16 kernels differ between batch sizes


def test_launched_batches_are_what_predict_returns(demo_models, real_windows):
    """launch() replays the bucket's two graphs in turn without waiting; a graph reused before its
    batch was collected (a third launch, or predict on the first graph) keeps that batch's rows first."""
    ckpt, _ = demo_models
    with load_classifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, kernels=True) as model:
        want = [model.predict(real_windows[0:4]), model.predict(real_windows[4:8])]
        first, second, third = (model.launch(real_windows[i:i + 4]) for i in (0, 4, 0))
        between = model.predict(real_windows[4:8])
        results = [first(), second(), third(), between]
    for got, expected in zip(results, [want[0], want[1], want[0], want[1]]):
        np.testing.assert_array_equal(got, expected)


def test_host_calls_wait_on_the_callers_current_stream(demo_models, real_windows):
    """A graph replays on the caller's current stream, so predict and launch must wait on that one:
    inside `torch.cuda.stream(other)` they return this call's probabilities, not the last call's
    (the window changes between calls, so a wait on the wrong stream would read stale rows)."""
    ckpt, _ = demo_models
    with load_classifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, kernels=True) as model:
        want = [model.predict(real_windows[i:i + 1]) for i in range(6)]
        other = torch.cuda.Stream()
        with torch.cuda.stream(other):
            got = [model.predict(real_windows[i:i + 1]) for i in range(3)]
            got += [model.launch(real_windows[i:i + 1])() for i in range(3, 6)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert len({float(w[0, 0]) for w in want}) > 1  # the windows give different probabilities


def test_a_restart_takes_every_tuning_from_disk(demo_models, tmp_path):
    """A second process on the same Triton cache times no candidate tile, the TMA temporal kernel's
    included (Triton itself stores no choice for candidates with a pre_hook), and classifies the
    real windows as the first process did, bit for bit."""
    ckpt, _ = demo_models
    env = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path / "cache")}
    script = Path(__file__).with_name("restart_check.py")
    timed = []
    for start in ("first", "restart"):
        done = subprocess.run([sys.executable, str(script), str(ckpt), str(tmp_path / f"{start}.npy")], env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        timed.append(json.loads(done.stdout.splitlines()[-1]))
    gpu_report("kernels restart", first_start_timings=timed[0], restart_timings=timed[1])
    assert timed[0].get("_temporal_conv_tma_kernel", 0) > 0 or torch.cuda.get_device_capability() < (9, 0)
    assert timed[1] == {}
    np.testing.assert_array_equal(np.load(tmp_path / "restart.npy"), np.load(tmp_path / "first.npy"))


def test_kernels_with_five_persons(demo_models, real_windows):
    """M=5 through the GPU kernels (persons pooled after the blocks) against the fp32 CPU model."""
    ckpt, _ = demo_models
    rng = np.random.default_rng(1)
    windows = np.stack([real_windows[rng.integers(len(real_windows), size=5), ..., 0] for _ in range(5)],
                       axis=-1)  # 5 windows of 5 persons, each person a real window
    with load_classifier(ckpt, persons=5) as reference:
        ref_p = reference.predict(windows)
    with load_classifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, kernels=True,
                         persons=5) as model:
        probs = model.predict(windows)
    diff = float(np.abs(probs - ref_p).max())
    gpu_report("fp16 kernels M=5 vs fp32 cpu", max_prob_diff=diff, windows=len(probs))
    assert diff <= 1e-3


def test_fp8_scales_inputs_beyond_its_range(demo_models, real_windows):
    """A block whose temporal-convolution inputs reach about 16,000 (e4m3 ends at 448): with fp8
    operands its output stays within 5% (relative norm) of the fp16 kernels' and the probabilities
    within 1e-3 of fp32; its inputs are scaled down first (tests/model/test_triton_model.py)."""
    from helpers import amplified

    from stgcn_rt.model.checkpoint import load_checkpoint
    from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

    ckpt, _ = demo_models
    loaded = amplified(load_checkpoint(ckpt), 2, 2.0 ** 16)
    x = torch.from_numpy(real_windows[:4]).cuda()
    outputs = {}
    for fp8 in (False, True):
        with TorchClassifier(loaded, device="cuda", precision="fp16", kernels=True,
                             fp8_temporal=fp8) as model:
            hook = model.model.blocks[2].register_forward_hook(
                lambda _m, _i, out, fp8=fp8: outputs.__setitem__(fp8, out.float()))
            with torch.inference_mode():
                probs = torch.softmax(model.model(x), 1).cpu().numpy()
            hook.remove()
    with TorchClassifier(loaded) as reference:
        ref_p = reference.predict(real_windows[:4])
    relative = float((outputs[True] - outputs[False]).norm() / outputs[False].norm())
    diff = float(np.abs(probs - ref_p).max())
    gpu_report("fp8 temporal, block 2 inputs x 65536", block_relative_error=relative, max_prob_diff=diff)
    assert relative <= 0.05 and diff <= 1e-3


def test_torch_compile(demo_models, real_windows, cpu_reference):
    ckpt, _ = demo_models
    with load_classifier(ckpt, device="cuda", compile=True) as model:
        logits = model.logits(real_windows[:4])
    diff = float(np.abs(logits - cpu_reference[:4]).max())
    gpu_report("torch.compile fp32 vs cpu", max_logit_diff=diff)
    assert diff <= 1e-4


def test_max_autotune_at_batch_1(demo_models, real_windows, cpu_reference):
    """The optimized model compiled with max-autotune (Triton GEMM/convolution kernels timed per shape;
    about two minutes of compilation) agrees with fp32 window by window."""
    ckpt, _ = demo_models
    ref_p = torch.softmax(torch.from_numpy(cpu_reference), 1).numpy()
    with load_classifier(ckpt, device="cuda", precision="fp16", optimize=True, compile=True, autotune=True,
                         cuda_graphs=True) as model:
        probs = np.concatenate([model.predict(w[None]) for w in real_windows])
    diff = float(np.abs(probs - ref_p).max())
    decided = np.abs(ref_p[:, 0] - ref_p[:, 1]) > 2e-3
    gpu_report("fp16 optimized max-autotune batch 1 vs fp32 cpu", max_prob_diff=diff,
           top1=float((probs.argmax(1) == ref_p.argmax(1))[decided].mean()), windows=len(probs))
    assert diff <= 1e-3
    assert (probs.argmax(1) == ref_p.argmax(1))[decided].all()


def test_graphs_sharing_one_pool_replay_in_any_order(demo_models, real_windows):
    """Bucket graphs share one memory pool by default; replayed in another order than captured they
    must give what graphs with a pool each give (a clash would corrupt whole windows)."""
    ckpt, _ = demo_models
    results = {}
    for shared in (True, False):
        with load_classifier(ckpt, device="cuda", precision="fp16", cuda_graphs=True, optimize=True,
                             shared_graph_memory=shared) as model:
            model.warm_up(16)  # captures buckets 1, 2, 4, 8, 16 in that order
            results[shared] = [model.predict(real_windows[:n]) for n in (14, 1, 5, 14, 2)]
    for with_shared, with_own in zip(results[True], results[False]):
        np.testing.assert_allclose(with_shared, with_own, atol=1e-5)
    np.testing.assert_array_equal(results[True][0], results[True][3])
