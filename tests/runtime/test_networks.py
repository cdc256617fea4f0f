"""The networks the PyTorch runner runs, built on the CPU (their CUDA paths are in test_gpu.py)."""

import copy

import torch
from helpers import loud_last_block

from stgcn_rt.model.checkpoint import load_checkpoint
from stgcn_rt.runtime.networks import plain_network


class SumDtypes(torch.overrides.TorchFunctionMode):
    """Records the dtype of every tensor that ``Tensor.sum`` reduces inside the block."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.sum:
            self.dtypes.append(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_fp16_network_pools_and_classifies_in_fp32(reference_checkpoint):
    """With the last block's activations in the hundreds, the pooling's sum over T x V passes fp16's
    65,504: an all-fp16 network gives NaN. The runner's fp16 network runs only the blocks in fp16 and
    sums in fp32, so it stays finite and near fp32."""
    loaded = loud_last_block(load_checkpoint(reference_checkpoint()), 10)
    x = torch.rand(2, 3, 150, 33, 1)
    with torch.no_grad():
        reference = loaded.model(x)
        assert not torch.isfinite(copy.deepcopy(loaded.model).half()(x.half())).all()  # the hazard is real
        network = plain_network(loaded.model, torch.float16)
        with SumDtypes() as sums:
            out = network(x)
    assert sums.dtypes and set(sums.dtypes) == {torch.float32}
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, reference, rtol=0, atol=2e-2)
    assert next(loaded.model.parameters()).dtype == torch.float32  # the caller's model is not cast
