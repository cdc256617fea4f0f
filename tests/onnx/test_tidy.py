"""Constant and Identity nodes (torch 2.0's exporter) become initializers and direct reads."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from stgcn_rt.onnx.tidy import fold_constants_and_identities


def test_constants_become_initializers_and_identities_are_bypassed():
    shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape_value")
    weight = numpy_helper.from_array(np.arange(9, dtype=np.float32).reshape(3, 3), "weight")
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=shape),
        helper.make_node("Identity", ["weight"], ["weight_alias"]),
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weight_alias"], ["product"]),
        helper.make_node("Identity", ["product"], ["y"]),  # writes a graph output: kept
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(6, dtype=np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]

    fold_constants_and_identities(model)

    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "MatMul", "Identity"]
    assert model.graph.node[1].input[1] == "weight"
    assert numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "shape")).tolist() == [2, 3]
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(after, before)
