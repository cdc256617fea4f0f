"""Builders: ONNX export and its validation (TensorRT engines live in stgcn_rt.export.tensorrt)."""
