"""Helpers shared by the tests (fixtures live in conftest.py files)."""

from __future__ import annotations

import inspect
import json
import os
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch
from click.testing import CliRunner

from stgcn_rt.model.graph import spatial_adjacency
from stgcn_rt.model.layouts import get_layout
from stgcn_rt.model.network import ModelConfig, build_model
from stgcn_rt.runtime.classifier import Classifier


def reference_state_dict(layout: str = "mediapipe33", two_stream: bool = True, num_classes: int = 2,
                         center: int | None = None, edge_importance: bool = True, seed: int = 0
                         ) -> dict[str, torch.Tensor]:
    """A state dict with the reference's keys and random values everywhere (BN statistics too),
    so that any mistake in channel order or key mapping shows in the outputs."""
    lay = get_layout(layout)
    config = ModelConfig(num_classes=num_classes, num_joints=lay.num_joints, two_stream=two_stream,
                         edge_importance=edge_importance, layout=layout)
    adjacency = torch.tensor(spatial_adjacency(lay, center), dtype=torch.float32)
    model = build_model(config, adjacency)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("A"):
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith("num_batches_tracked"):
            state[key] = value.clone()
        elif key.endswith("weight") and value.ndim == 1:  # BatchNorm scale
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif "edge_importance" in key:
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        else:
            fan_in = value[0].numel() if value.ndim > 1 else 1
            state[key] = torch.randn(value.shape, generator=generator) / fan_in ** 0.5
    return state


class MeanClassifier(Classifier):
    """A tiny deterministic classifier: logits are per-window statistics, independent of batching."""

    name = "mean"

    def __init__(self, shape=(None, 3, 8, 5, 1), gate: threading.Event | None = None, fail_on=None):
        self.classes = ["low", "high"]
        self.input_shape = shape
        self.device = "cpu"
        self.gate = gate
        self.fail_on = fail_on
        self.batches = []

    def _logits(self, windows):
        if self.gate is not None:
            self.gate.wait(10)
        windows = np.asarray(windows, dtype=np.float32)
        if self.fail_on is not None and np.any(windows[:, 0, 0, 0, 0] == self.fail_on):
            raise RuntimeError("planted failure")
        self.batches.append(len(windows))
        mean = windows.reshape(len(windows), -1).mean(1)
        return np.stack([-mean, mean], axis=1).astype(np.float32)


class V2Server:
    """Just enough of Triton's v2 HTTP protocol: health, model ready/config, binary-input infer; the
    config's parameters name the model's classes and, for an untrained model, say so, as stgcn-rt
    serve's do."""

    def __init__(self, model, name="stgcn", port=0):
        self.model, self.name, self.requests = model, name, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body=None):
                data = json.dumps(body or {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v2/health/live":
                    return self.reply(200)
                if self.path == f"/v2/models/{outer.name}/ready":
                    return self.reply(200)
                if self.path == f"/v2/models/{outer.name}/config":
                    return self.reply(200, {
                        "name": outer.name, "max_batch_size": 4,
                        "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [3, 150, 33, 1]}],
                        "output": [{"name": "output", "data_type": "TYPE_FP32", "dims": [2]}],
                        "parameters": {"stgcn_rt.classes": {"string_value": "normal,shoplifting"},
                                       **({"stgcn_rt.untrained": {"string_value": "true"}}
                                          if outer.model.untrained else {})}})
                return self.reply(404, {"error": "not found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                size = int(self.headers.get("Inference-Header-Content-Length", len(body)))
                header = json.loads(body[:size])
                spec = header["inputs"][0]
                windows = np.frombuffer(body[size:], np.float32).reshape(spec["shape"])
                assert len(windows) <= 4, "the client must respect max_batch_size"
                outer.requests += 1
                logits = outer.model.logits(windows)
                return self.reply(200, {"model_name": outer.name, "outputs": [
                    {"name": "output", "datatype": "FP32", "shape": list(logits.shape),
                     "data": logits.ravel().tolist()}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def cli_runner() -> CliRunner:
    """A click test runner that keeps stderr apart from stdout on every click version: 8.2+ always
    does, 8.1 (the last for Python 3.8, JetPack 5's) only with ``mix_stderr=False``."""
    if "mix_stderr" in inspect.signature(CliRunner).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def amplified(loaded: Any, block: int, factor: float) -> Any:
    """``loaded`` (a two-stream LoadedModel) with block ``block``'s temporal-convolution input
    ``factor`` times larger in both streams and its weights as much smaller: the same function,
    other activation ranges."""
    for stream in (loaded.model.origin_stream, loaded.model.motion_stream):
        target = stream.blocks[block]
        with torch.no_grad():
            target.gcn_bn.weight *= factor
            target.gcn_bn.bias *= factor
            target.temporal_conv.weight /= factor
    return loaded


def loud_last_block(loaded: Any, factor: float = 20.0) -> Any:
    """``loaded`` (a two-stream LoadedModel) with the last block's activations ``factor`` times larger in
    both streams (into the hundreds at 20) and the classifier's weights as much smaller: ordinary logits,
    but a pooling sum over T x V positions past fp16's 65,504, as in trained checkpoints seen in the field."""
    for stream in (loaded.model.origin_stream, loaded.model.motion_stream):
        last = stream.blocks[-1]
        with torch.no_grad():
            last.temporal_bn.weight *= factor
            last.temporal_bn.bias *= factor
            stream.fcn.weight /= factor
    return loaded


def gpu_report(name: str, **figures: Any) -> None:
    """Print a GPU test's figures and append them to $GPU_REPORT (a JSON Lines file) when set."""
    line = json.dumps({"test": name, "device": torch.cuda.get_device_name(), **figures})
    print(line)
    if os.environ.get("GPU_REPORT"):
        with open(os.environ["GPU_REPORT"], "a") as handle:
            handle.write(line + "\n")


@dataclass
class Posed:
    """One frame as a pose stage answered it: its slots (M, 33, 3), the persons found, and its step's
    error, milliseconds and frames (``batch``)."""

    keypoints: np.ndarray
    found: int
    error: str | None
    milliseconds: float
    batch: int


class Answers:
    """A pose stage's ``answer``, collecting each job's frame as a :class:`Posed`."""

    def __init__(self) -> None:
        self.steps: list[tuple[list[Any], Any]] = []
        self._got: dict[Any, Posed] = {}
        self._changed = threading.Condition()

    def __call__(self, jobs: list[Any], step: Any) -> None:
        with self._changed:
            self.steps.append((jobs, step))
            for i, job in enumerate(jobs):
                assert job not in self._got, f"{job} answered twice"
                self._got[job] = Posed(step.keypoints[i], int(step.found[i]), step.error, step.milliseconds,
                                       len(jobs))
            self._changed.notify_all()

    def wait(self, jobs: list[Any], timeout: float = 120) -> list[Posed]:
        """``jobs``' frames, once all are answered (fails after ``timeout`` seconds)."""
        with self._changed:
            assert self._changed.wait_for(lambda: all(job in self._got for job in jobs), timeout), \
                f"not answered in {timeout} s: {[job for job in jobs if job not in self._got]}"
            return [self._got[job] for job in jobs]

    def answered(self, job: Any) -> bool:
        with self._changed:
            return job in self._got


def tracked_distance(keypoints: list[np.ndarray], expected: list[np.ndarray | None]) -> float:
    """How far a camera's posed frames (slots (1, 33, 3) each) lie from the poses it gets alone:
    the mean over frames of the landmarks' mean x, y distance (fractions of the frame). Not
    landmark by landmark: on some CPUs a batch of cameras rounds otherwise than one camera, and
    tracking carries that on (on an AMD EPYC up to 8e-4 a frame, 0.02 for one landmark, over 40
    frames of the demo clip, where the clip run backwards lies 1e-2 away)."""
    return float(np.mean([np.abs(slots[0] - np.clip(points, 0, 1))[:, :2].mean()
                          for slots, points in zip(keypoints, expected)]))
