"""ONNX graph rewriting: tidying an export, folding BatchNorms, and the rewrites ONNX Runtime's CPU
runs faster (graph steps aggregate-first or channels-last, wide INT8 convolutions as integer GEMMs)."""
