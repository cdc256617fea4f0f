import re

import numpy as np
import pytest
import torch
from helpers import MeanClassifier

from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime import load_classifier
from stgcn_rt.runtime.classifier import warm_up_with_progress


def test_pt_and_onnx_give_the_same_probabilities(demo_models, real_windows):
    ckpt, onnx_path = demo_models
    with load_classifier(ckpt) as torch_model, load_classifier(onnx_path) as onnx_model:
        assert type(torch_model).__name__ == "TorchClassifier"
        assert type(onnx_model).__name__ == "OnnxClassifier"
        assert torch_model.classes == onnx_model.classes == ["normal", "shoplifting"]
        windows = real_windows[:6]
        p_torch, p_onnx = torch_model.predict(windows), onnx_model.predict(windows)
        assert p_torch.shape == (6, 2) and p_torch.dtype == np.float32
        np.testing.assert_allclose(p_torch.sum(1), 1.0, atol=1e-6)
        assert np.abs(p_torch - p_onnx).max() <= 1e-4
        # torch tensors are accepted by every backend
        assert np.abs(onnx_model.predict(torch.from_numpy(windows)) - p_onnx).max() == 0


def test_shape_contract(demo_models):
    _, onnx_path = demo_models
    with load_classifier(onnx_path) as model:
        assert model.input_shape == (None, 3, 150, 33, 1)
        assert model.device == "cpu"


@pytest.mark.parametrize("windows, match", [
    (np.zeros((3, 150, 33, 1), np.float32), "add the batch axis"),
    (np.zeros((1, 3, 150, 25, 1), np.float32), r"expects \(N, 3, 150, 33, 1\)"),
    (np.zeros((1, 3, 100, 33, 1), np.float32), r"shape \(1, 3, 100, 33, 1\)"),
    (np.zeros((0, 3, 150, 33, 1), np.float32), "empty"),
    (np.zeros((1, 3, 150, 33, 1), np.int64), "dtype int64"),
    ([[1, 2, 3]], "numpy array or torch tensor"),
])
def test_bad_windows_get_one_clear_error(demo_models, windows, match):
    for path in demo_models:
        with load_classifier(path, **({"seq_len": 150, "persons": 1} if path.suffix == ".pt" else {})) as model:
            with pytest.raises(StgcnError, match=match) as err:
                model.predict(windows)
            assert "\n" not in str(err.value)


def test_float64_input_is_accepted(demo_models, real_windows):
    _, onnx_path = demo_models
    with load_classifier(onnx_path) as model:
        np.testing.assert_allclose(model.predict(real_windows[:2].astype(np.float64)),
                                   model.predict(real_windows[:2]), atol=1e-6)


def test_backend_choice_errors(tmp_path, demo_models):
    ckpt, _ = demo_models
    unknown = tmp_path / "model.tflite"
    unknown.write_bytes(b"x")
    with pytest.raises(StgcnError, match="cannot tell the backend"):
        load_classifier(unknown)
    with pytest.raises(StgcnError, match="not found"):
        load_classifier(tmp_path / "missing.onnx")
    with pytest.raises(StgcnError, match="need a CUDA device"):
        load_classifier(ckpt, precision="fp16")
    with pytest.raises(StgcnError, match="precision must be one of"):
        load_classifier(ckpt, precision="int4")


@pytest.mark.parametrize("which", [0, 1], ids=["pytorch", "onnxruntime"])
def test_closed_classifier_refuses_work(demo_models, real_windows, which):
    """Every backend, after close(): one line for predict and logits alike, not an AttributeError."""
    model = load_classifier(demo_models[which])
    assert model.predict(real_windows[:1]).shape == (1, 2)
    model.close()
    assert model.closed
    for call in (model.predict, model.logits):
        with pytest.raises(StgcnError, match=f"this {model.name} classifier was closed: load the model again"):
            call(real_windows[:1])


def test_unpadded_batch_of_a_static_batch_model():
    static = MeanClassifier(shape=(4, 3, 8, 5, 1))
    assert [static.unpadded_batch(n) for n in (1, 3, 4, 7, 11)] == [1, 3, 4, 4, 8]
    assert MeanClassifier().unpadded_batch(11) == 11  # any batch runs as it is


def test_autotune_needs_compile(demo_models):
    ckpt, _ = demo_models
    with pytest.raises(StgcnError, match="turn compile on"):
        load_classifier(ckpt, autotune=True)


@pytest.mark.parametrize(("options", "message"), [
    ({"compile": True}, "turn compile off"),
    ({}, "fp16 on a CUDA GPU"),
])
def test_kernels_refuse_what_they_cannot_run(demo_models, options, message):
    ckpt, _ = demo_models
    for name in ("kernels", "triton_kernels"):  # triton_kernels: the option's old name
        with pytest.raises(StgcnError, match=message):
            load_classifier(ckpt, **{name: True}, **options)
    with pytest.raises(StgcnError, match="^the PyTorch runner has no option kernel: choose from autotune, compile, "):
        load_classifier(ckpt, kernel=True)


def test_windows_checked_once_per_shape_and_dtype_still_refuse_a_new_mismatch(monkeypatch):
    """The full check runs once per (type, shape, dtype): a repeated batch skips it, a different
    shape or dtype after an accepted one is still refused."""
    from stgcn_rt.runtime import classifier

    model = MeanClassifier()
    checked = []
    full_check = classifier.check_windows
    monkeypatch.setattr(classifier, "check_windows", lambda w, *rest: (checked.append(w.shape), full_check(w, *rest)))
    good = np.zeros((2, 3, 8, 5, 1), np.float32)
    for _ in range(3):
        model.predict(good)
    assert checked == [(2, 3, 8, 5, 1)]
    with pytest.raises(StgcnError, match="expects"):
        model.predict(np.zeros((2, 3, 8, 4, 1), np.float32))
    with pytest.raises(StgcnError, match="dtype int32"):
        model.predict(good.astype(np.int32))
    assert model.predict(torch.zeros(2, 3, 8, 5, 1)).shape == (2, 2)  # a tensor is checked on its own
    assert len(checked) == 4


def test_batch_buckets_are_the_powers_of_two():
    from stgcn_rt.runtime.cuda_graphs import bucket_above, buckets_up_to

    assert [bucket_above(count) for count in (1, 2, 3, 5, 8, 9, 130)] == [1, 2, 4, 8, 8, 16, 256]
    assert buckets_up_to(1) == [1] and buckets_up_to(8) == [1, 2, 4, 8] and buckets_up_to(130)[-1] == 128


def test_warm_up_reports_each_batch_size_made_ready(demo_models):
    """The PyTorch runner prepares the batch buckets up to max_batch and reports each one in turn;
    a backend with nothing to prepare reports nothing."""
    ckpt, onnx_path = demo_models
    for model, want in ((ckpt, [1, 2, 4]), (onnx_path, [])):
        lines: list[str] = []
        with load_classifier(model) as classifier:
            warm_up_with_progress(classifier, 6, lines.append)
        assert [int(re.fullmatch(r"  batch size (\d+) ready after \d+ s", line)[1]) for line in lines] == want


class NaNClassifier(MeanClassifier):
    """MeanClassifier whose second window's logits are NaN."""

    def __init__(self, precision):
        super().__init__()
        self.precision = precision

    def _logits(self, windows):
        logits = super()._logits(windows)
        logits[1:2] = np.nan
        return logits


@pytest.mark.parametrize(("precision", "advice"), [
    ("fp16", "overflow fp16; run it in fp32 instead"),
    ("fp32", "weights or statistics hold NaN"),
])
def test_a_non_finite_output_never_reaches_the_caller(precision, advice):
    model = NaNClassifier(precision)
    windows = np.random.rand(3, 3, 8, 5, 1).astype(np.float32)
    for call in (model.predict, model.logits, lambda w: model.launch(w)()):
        with pytest.raises(StgcnError, match=f"mean \\({precision}\\) gave NaN or infinite outputs for 1 of 3 "
                                             f"windows: .*{advice}"):
            call(windows)
    windows[0, 0, 0, 0, 0] = np.inf
    with pytest.raises(StgcnError, match="the windows themselves hold NaN or infinity"):
        model.predict(windows)
