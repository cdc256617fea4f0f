"""Runners: one Classifier interface over PyTorch, ONNX Runtime and TensorRT, and batching."""

from stgcn_rt.runtime.classifier import Classifier, load_classifier

__all__ = ["Classifier", "load_classifier"]
