"""``stgcn-rt serve``: a local Triton Inference Server in front of any stgcn-rt classifier.

NVIDIA PyTriton (``pip install nvidia-pytriton``) ships a real ``tritonserver`` binary and its
Python backend; the classifier (checkpoint, ONNX or engine) runs in this process and Triton's
dynamic batcher feeds it. The model is published under the same input/output names, dimensions
and ``stgcn_rt.classes`` parameter as a repository from ``stgcn-rt export-triton``, so clients
(``load_classifier("grpc://host:8001/stgcn")``) cannot tell the two servers apart.

Binds to 127.0.0.1 unless told otherwise; no metrics port is opened.
"""

from __future__ import annotations

import os
import signal
import socket
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.errors import StgcnError, require
from stgcn_rt.runtime.classifier import Classifier, is_checkpoint, load_classifier, warm_up_with_progress
from stgcn_rt.runtime.heap import startup_objects_frozen
from stgcn_rt.urls import mask_url
from stgcn_rt.window import CHANNELS, FRAMES, JOINTS


@dataclass
class ServeOptions:
    name: str = "stgcn"
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    max_batch: int = 64
    queue_delay_us: int = 2000
    log_file: Path | None = None  # Triton's own log (default: a file in the temporary folder)
    persons: int = 1  # window shape where the model leaves it open (checkpoints)
    seq_len: int = FRAMES
    classifier: dict[str, Any] = field(default_factory=dict)  # device, precision, ... for load_classifier


def window_dims(classifier: Classifier, options: ServeOptions) -> list[int]:
    """(C, T, V, M) of one window, the model's own where fixed."""
    c, t, v, m = classifier.input_shape[1:]
    return [int(c or CHANNELS), int(t or options.seq_len), int(v or JOINTS), int(m or options.persons)]


def use_this_interpreters_libpython() -> None:
    """Make Triton's Python backend stub load this interpreter's libpython.

    The stub links libpython3.X dynamically; where the system has another build of the same
    version (pyenv beside Debian's python3.11), it would load that one with this interpreter's
    standard library and fail at start-up inside threading. PyTriton appends its own libraries
    to LD_LIBRARY_PATH, so putting this interpreter's library folder first is enough.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and list(Path(libdir).glob("libpython3*.so*")):
        current = os.environ.get("LD_LIBRARY_PATH", "")
        if libdir not in current.split(":"):
            os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir


def check_port_free(host: str, port: int, option: str) -> None:
    """Fail with one line before Triton starts (it would otherwise exit and leave PyTriton waiting)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StgcnError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another {option} "
                             "or stop what uses it") from None


def make_infer(classifier: Classifier) -> Callable[..., dict[str, np.ndarray]]:
    from pytriton.decorators import batch

    @batch
    def infer(input: np.ndarray) -> dict[str, np.ndarray]:  # noqa: A002 - Triton's tensor name
        return {"output": classifier.logits(input).astype(np.float32)}

    return infer


def publish_metadata(triton: Any, classifier: Classifier) -> bool:
    """Put the model's metadata (classes, precision, untrained, ...) into the served model config as
    ``stgcn_rt.*`` parameters, as a repository's config.pbtxt has them.

    PyTriton has no public argument for model-config parameters; its model objects build their
    config once and cache it, so the parameter is added to that cached config before the server
    loads it. Returns False (the client then names classes class_0...) if PyTriton changed.
    """
    try:
        for model in triton._model_manager.models:
            model._get_triton_model_config().backend_parameters.update(classifier.model_metadata.to_triton())
        return True
    except AttributeError:
        return False


def _stop_on_sigterm(*_: object) -> None:
    raise KeyboardInterrupt


def serve(model: str, options: ServeOptions, report: Callable[[str], None] = print) -> None:
    """Serve ``model`` until SIGINT or SIGTERM."""
    require("pytriton", "serve", "stgcn-rt serve (pip install nvidia-pytriton)")
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    use_this_interpreters_libpython()
    check_port_free(options.host, options.http_port, "--http-port")
    check_port_free(options.host, options.grpc_port, "--grpc-port")
    classifier_options = dict(options.classifier)
    if is_checkpoint(model):
        classifier_options.setdefault("persons", options.persons)
        classifier_options.setdefault("seq_len", options.seq_len)
    with load_classifier(model, **classifier_options) as classifier:
        dims = window_dims(classifier, options)
        if classifier.batch_size is not None and options.max_batch > 1:
            raise StgcnError(f"{mask_url(model)} has a static batch of {classifier.batch_size}; Triton's dynamic "
                             "batching needs a dynamic batch axis: re-export with --dynamic-batch")
        warm_up_with_progress(classifier, options.max_batch, report)
        log_file = options.log_file or Path(tempfile.gettempdir()) / f"stgcn-rt-serve-{os.getpid()}.log"
        config = TritonConfig(http_address=options.host, http_port=options.http_port,
                              grpc_address=options.host, grpc_port=options.grpc_port,
                              allow_metrics=False, exit_timeout_secs=5, log_file=log_file)
        triton = Triton(config=config)
        triton.bind(model_name=options.name, infer_func=make_infer(classifier),
                    inputs=[Tensor(name="input", dtype=np.float32, shape=tuple(dims))],
                    outputs=[Tensor(name="output", dtype=np.float32, shape=(len(classifier.classes),))],
                    config=ModelConfig(max_batch_size=options.max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=options.queue_delay_us)),
                    strict=True)
        if not publish_metadata(triton, classifier):
            report("warning: this PyTriton version hides the model config; clients will see class_0, class_1...")
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            triton.run()
            report(f"serving {mask_url(model)} ({classifier.name} on {classifier.device}) as '{options.name}', "
                   f"window {dims}, classes {', '.join(classifier.classes)}")
            report(f"  http://{options.host}:{options.http_port}/{options.name}   "
                   f"grpc://{options.host}:{options.grpc_port}/{options.name}   (Ctrl-C stops)")
            report(f"  Triton's log: {log_file}")
            with startup_objects_frozen():
                triton.serve()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            triton.stop()
