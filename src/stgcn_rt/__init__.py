"""stgcn-rt: two-stream ST-GCN skeleton action recognition from PyTorch to real time.

The package root stays light: heavy modules (torch, onnx, tensorrt, mediapipe) are imported
by the functions that need them, so ``import stgcn_rt`` and ``stgcn-rt --help`` are fast.
"""

__version__ = "0.1.0"

from stgcn_rt.errors import StgcnError

__all__ = ["StgcnError", "__version__"]
