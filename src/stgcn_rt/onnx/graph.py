"""Small queries and edits over an ONNX graph, shared by the passes that rewrite exported models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import onnx
from onnx import helper


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Every tensor name -> the nodes that read it (a node reading a tensor twice is listed twice)."""
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Every tensor name a node writes -> that node."""
    return {out: node for node in graph.node for out in node.output}


def chain_above(node: onnx.NodeProto, ops: Sequence[str], writers: dict[str, onnx.NodeProto],
                readers: dict[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto] | None:
    """The nodes that write ``node``'s first input, then that node's first input, and so on, with
    the op types ``ops`` in that order, each read by nothing but the next; None where that does not hold."""
    chain, name = [], node.input[0]
    for op in ops:
        above = writers.get(name)
        if above is None or above.op_type != op or len(readers.get(above.output[0], [])) != 1:
            return None
        chain.append(above)
        name = above.input[0]
    return chain


Step = TypeVar("Step")


def matmul_steps(graph: onnx.GraphProto, arrays: dict[str, np.ndarray],
                 match: Callable[[onnx.NodeProto, dict[str, onnx.NodeProto], dict[str, list[onnx.NodeProto]],
                                  dict[str, np.ndarray]], Step | None]) -> list[Step]:
    """``match(matmul, producers, consumers, arrays)`` for every MatMul of ``graph``, where it matches:
    the graph steps a rewrite pass finds (each ends in the joint-mixing MatMul)."""
    writers, readers = producers(graph), consumers(graph)
    return [step for node in graph.node if node.op_type == "MatMul"
            and (step := match(node, writers, readers, arrays)) is not None]


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of ``node``'s attribute ``name``, or ``default`` where it has none."""
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def batchnorm_affine(node: onnx.NodeProto, parameters: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNormalization ``node`` as ``x * scale + shift`` per channel, from its (gamma, beta,
    mean, variance) ``parameters``."""
    gamma, beta, mean, var = parameters
    scale = gamma / np.sqrt(var + float(attribute(node, "epsilon", 1e-5)))
    return scale, beta - mean * scale


def set_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Make ``nodes`` the graph's nodes, and drop the initializers none of them reads."""
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
