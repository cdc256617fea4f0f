"""Triton Inference Server runner: ``load_classifier("http://host:8000/stgcn")`` (or grpc://host:8001/...).

The model's input name, window shape, maximum batch and class names come from the server's model
config (``stgcn-rt export-triton`` writes them). Requests that fail on the connection are retried
with backoff (a server restart is ridden out); after the last retry the batch fails with one clear
line, so the pipeline counts its windows as failed, never silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from stgcn_rt.artefact import ModelMetadata
from stgcn_rt.errors import StgcnError, first_line, require
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.urls import mask_url

DEFAULT_PORTS = {"http": 8000, "grpc": 8001}


class TritonClassifier(Classifier):
    name = "Triton"

    def __init__(self, url: str, device: str = "remote", precision: str | None = None, *,
                 timeout_s: float = 10.0, retries: int = 3, backoff_s: float = 0.5, **_: Any) -> None:
        parts = urlsplit(str(url))
        model = parts.path.strip("/").split("/")[0]
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or not model:
            raise StgcnError(f"cannot read the Triton address {mask_url(str(url))}: write http://host:8000/MODEL "
                             "or grpc://host:8001/MODEL")
        self.url, self.model_name = mask_url(str(url)), model
        self.device = f"triton {parts.scheme}://{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}"
        self.retries, self.backoff_s = retries, backoff_s
        if parts.scheme == "grpc":
            module = require("tritonclient.grpc", "triton", "Triton over gRPC")
        else:
            module = require("tritonclient.http", "triton", "Triton over HTTP")
        self._module = module
        address = f"{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}"
        kwargs = ({"connection_timeout": timeout_s, "network_timeout": timeout_s} if parts.scheme == "http"
                  else {})
        self._client = module.InferenceServerClient(url=address, **kwargs)
        self._grpc = parts.scheme == "grpc"
        try:
            live = self._retry(self._client.is_server_live)
        except StgcnError:
            live = False
        if not live:
            raise StgcnError(f"no Triton server answers at {self.device}: start one (tritonserver "
                             "--model-repository=...) or check the address")
        if not self._retry(lambda: self._client.is_model_ready(model)):
            raise StgcnError(f"the Triton server at {self.device} has no ready model '{model}': check the "
                             "name, or the server log for why it did not load")
        config = self._retry(lambda: self._client.get_model_config(model, **({"as_json": True} if self._grpc else {})))
        config = config.get("config", config)
        model_input, model_output = config["input"][0], config["output"][0]
        self.input_name, self.output_name = model_input["name"], model_output["name"]
        self.max_batch = int(config.get("max_batch_size", 0)) or 1
        dims = tuple(int(d) for d in model_input["dims"])
        self.input_shape = (None, *dims)
        parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
        facts = ModelMetadata.from_triton(parameters)
        self.precision, self.untrained = facts.precision, facts.untrained
        self.classes = facts.class_names(int(model_output["dims"][-1]))

    def _retry(self, call: Callable[[], Any]) -> Any:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as exc:  # tritonclient raises its own and the transport's errors
                if attempt == self.retries:
                    raise StgcnError(f"Triton at {self.device} failed after {self.retries + 1} tries: "
                                     f"{first_line(exc)[:200]}") from exc
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _release(self) -> None:
        if getattr(self, "_client", None) is not None:
            self._client.close()
            self._client = None

    def _logits(self, windows: Any) -> np.ndarray:
        if not isinstance(windows, np.ndarray):
            windows = windows.detach().cpu().numpy()
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        parts = [self._infer(windows[i:i + self.max_batch]) for i in range(0, len(windows), self.max_batch)]
        return np.concatenate(parts)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        request = self._module.InferInput(self.input_name, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        result = self._retry(lambda: self._client.infer(self.model_name, [request]))
        return result.as_numpy(self.output_name).astype(np.float32, copy=False)
