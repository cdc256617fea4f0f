"""ONNX Runtime runner: CPU with intra-op thread control; CUDA/TensorRT providers where installed."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.artefact import ModelMetadata
from stgcn_rt.errors import StgcnError, first_line
from stgcn_rt.onnx.cpu import cpu_has_amx_int8, rewritten_for_cpu
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.window import static_chunks

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def session_options(ort: Any, threads: int | None) -> Any:
    """Quiet session options; ``threads`` intra-op threads (None: ONNX Runtime's default)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return options


def providers_for(ort: Any, device: str) -> list[str]:
    """ONNX Runtime's providers for ``device``: its GPU ones where the device is CUDA (one line where
    this onnxruntime has none), else the CPU's."""
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    providers = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    if not providers:
        raise StgcnError("this onnxruntime build has no CUDA provider: pip install onnxruntime-gpu, "
                         "or use --device cpu")
    return [*providers, "CPUExecutionProvider"]


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class OnnxClassifier(Classifier):
    name = "ONNX Runtime"

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32",
                 *, threads: int | None = None, providers: list[str] | None = None,
                 integer_gemm: bool | None = None, aggregate_first: bool = True,
                 channels_last_steps: bool = True, parallel_windows: bool = True) -> None:
        """On the CPU provider: ``threads`` the cores ONNX Runtime uses (default: all this process may
        run on); ``integer_gemm`` runs an INT8 model's wide temporal convolutions
        through ONNX Runtime's integer GEMM (:mod:`.onnxruntime_kernels`; None: where the CPU has
        AMX); ``aggregate_first`` runs a float model's graph steps aggregate-first
        (:mod:`.onnxruntime_aggregate`); ``channels_last_steps`` an INT8 model's channels-last
        (:mod:`.onnxruntime_int8_steps`). All rewrite the runner's copy, never the file.

        ``parallel_windows``: a batch of at least as many windows as cores runs as single windows
        (or static-batch chunks), one per core at a time, in a single-threaded session called from
        one thread per core, instead of the whole batch with every core splitting each operator
        (smaller batches keep that). On a 2-core CPU that gave 3-13% (fp32) and 6-15% (INT8) more
        windows per second at batch 8, interleaved
        (docs/benchmarks/cpu-parallel-windows-cpu2-2026-11-27-s21.md); on a 16-core VM no split of
        a batch won every round (docs/benchmarks/cpu-window-split-cpu16-2026-11-27-s22.md)."""
        import onnxruntime as ort

        if precision != "fp32":
            raise StgcnError(
                f"ONNX Runtime runs the model's own precision; for {precision} build a TensorRT "
                "engine (stgcn-rt build) or export a quantized ONNX"
            )
        options = session_options(ort, threads)
        if providers is None:
            providers = providers_for(ort, device)
        #: how many INT8 convolutions run through the integer GEMM rather than the symmetric kernels
        self.gemm_convolutions = 0
        #: how many graph steps run aggregate-first
        self.steps_aggregated_first = 0
        #: how many quantized graph steps run channels-last
        self.steps_channels_last = 0
        model: str | bytes = str(path)
        on_cpu = providers == ["CPUExecutionProvider"]
        try:
            if on_cpu:
                gemm = cpu_has_amx_int8() if integer_gemm is None else integer_gemm
                if gemm or aggregate_first or channels_last_steps:
                    model, self.gemm_convolutions, self.steps_aggregated_first, self.steps_channels_last = \
                        rewritten_for_cpu(path, gemm, aggregate_first, channels_last_steps)
            # With a static batch and the export's graph steps, ONNX Runtime moves integer convolutions
            # to NHWC and then transposes their 8-bit outputs back for the graph step's reshape, which
            # costs 3x the whole INT8 model on the CPU (118 vs 39 ms per window;
            # docs/benchmarks/ort-int8-layout-cpu2-2026-11-25.md). Channels-last steps meet NHWC halfway,
            # so it stays on for them; float models are unaffected by the switch.
            disabled = [] if self.steps_channels_last else ["NhwcTransformer"]
            self.session = ort.InferenceSession(model, options, providers=providers, disabled_optimizers=disabled)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise StgcnError(f"ONNX Runtime cannot open {path}: {first_line(exc)[:300]}") from exc
        #: how many windows of a batch run at a time (:meth:`_batch_logits`); 1: the whole batch in one run
        self.window_workers = (threads or usable_cores()) if parallel_windows and on_cpu else 1
        # made on the first batch of several windows: one single-threaded session (ONNX Runtime
        # sessions take concurrent runs, each on its caller's thread) and the threads that call it
        self._single_thread_session = lambda: ort.InferenceSession(
            model, session_options(ort, 1), providers=providers, disabled_optimizers=disabled)
        self._window_runner: tuple[Any, ThreadPoolExecutor] | None = None
        self._window_runner_lock = threading.Lock()
        self.path = Path(path)
        self.device = device
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        facts = ModelMetadata.from_onnx(self.metadata)
        self.precision, self.untrained = facts.precision, facts.untrained
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in model_input.shape)
        self.classes = facts.class_names(int(self.session.get_outputs()[0].shape[-1]))

    def _release(self) -> None:
        if self._window_runner is not None:
            self._window_runner[1].shutdown()
            self._window_runner = None
        self.session = None  # type: ignore[assignment]

    def _batch_logits(self, windows: Any) -> np.ndarray:
        """A batch of at least ``window_workers`` windows (or static-batch chunks) runs as that many of
        them at a time (``parallel_windows``); fewer, as every backend runs them, every core on each
        operator (so a machine with more cores than windows keeps them all busy)."""
        if self.window_workers < 2 or windows.shape[0] < self.window_workers * (self.batch_size or 1):
            return super()._batch_logits(windows)
        host = _host_float32(windows)
        pieces = (static_chunks(host, self.batch_size) if self.batch_size
                  else [(host[i:i + 1], 1) for i in range(len(host))])
        session, pool = self._windows_at_a_time()
        share = -(-len(pieces) // self.window_workers)  # each thread runs its share in order
        shares = [pieces[i:i + share] for i in range(0, len(pieces), share)]
        parts = pool.map(lambda part: [self._run(session, piece)[:count] for piece, count in part], shares)
        return np.concatenate([logits for part in parts for logits in part])

    def _windows_at_a_time(self) -> tuple[Any, ThreadPoolExecutor]:
        with self._window_runner_lock:
            if self._window_runner is None:
                self._window_runner = (self._single_thread_session(),
                                       ThreadPoolExecutor(self.window_workers, thread_name_prefix="onnxruntime-window"))
            return self._window_runner

    def _logits(self, windows: Any) -> np.ndarray:
        return self._run(self.session, _host_float32(windows))

    def _run(self, session: Any, windows: np.ndarray) -> np.ndarray:
        return session.run([self.output_name], {self.input_name: windows})[0].astype(np.float32, copy=False)


def _host_float32(windows: Any) -> np.ndarray:
    if not isinstance(windows, np.ndarray):
        windows = windows.detach().cpu().numpy()
    return np.ascontiguousarray(windows, dtype=np.float32)
