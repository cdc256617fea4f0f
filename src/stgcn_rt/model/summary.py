"""Parameter and FLOP counts of a network for a given input shape."""

from __future__ import annotations

import torch

from stgcn_rt.model.network import ModelConfig, build_model


def count_flops(model: torch.nn.Module, shape: tuple[int, ...], operator: str | None = None) -> int | None:
    """Floating-point operations (multiply and add counted separately) of one forward pass; with
    ``operator``, only those of the operators whose name contains it (e.g. ``"convolution"``).
    None where torch has no FLOP counter (before 2.1, such as JetPack 5's torch 2.0).

    Runs on the meta device, so it costs no real compute.
    """
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    meta_model = _to_meta(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(torch.empty(shape, device="meta"))
    if operator is None:
        return int(counter.get_total_flops())
    return int(sum(count for op, count in counter.get_flop_counts()["Global"].items() if operator in str(op)))


def flops_for_config(config: ModelConfig, shape: tuple[int, ...]) -> int | None:
    adjacency = torch.zeros(config.partitions, config.num_joints, config.num_joints)
    return count_flops(build_model(config, adjacency), shape)


def _to_meta(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model)
    return clone.to("meta").eval()
