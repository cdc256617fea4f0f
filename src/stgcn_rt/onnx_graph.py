"""Small queries over an ONNX graph, shared by the passes that rewrite exported models."""

from __future__ import annotations

import onnx


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Every tensor name -> the nodes that read it (a node reading a tensor twice is listed twice)."""
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found
