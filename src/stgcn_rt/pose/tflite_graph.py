"""MediaPipe's .tflite networks as PyTorch modules, without TensorFlow.

The flatbuffer is read with the pure-Python ``tflite`` package. Its constant tensors are unpacked in
numpy where the file keeps them packed: fp16 weights behind DEQUANTIZE, sparse (CSR) weights behind
DENSIFY. The remaining operators run as PyTorch operations, with 4-D activations kept NCHW (PyTorch's
layout) and converted to TensorFlow's NHWC only where an operator's meaning depends on it (a reshape,
the outputs). Only the operators MediaPipe's pose models use are implemented; any other is one clear
error naming it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stgcn_rt.errors import StgcnError, require

#: tflite's TensorType codes -> numpy dtypes (the ones these models hold)
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
#: fused activations by tflite's ActivationFunctionType code
_ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    0: lambda x: x, 1: F.relu, 2: lambda x: F.hardtanh(x, -1.0, 1.0), 3: F.relu6, 4: torch.tanh,
}
SAME, VALID = 0, 1  # tflite's Padding codes


@dataclass
class _Operator:
    name: str  # the builtin operator's name, e.g. CONV_2D
    inputs: list[int]
    outputs: list[int]
    #: the flatbuffer's options table (or None), which the operator's ``prepare`` replaces with what its
    #: runs need in plain Python values: a run reads no flatbuffer, so torch.compile traces the whole
    #: network as one graph
    options: Any


def _operator_names(tflite: Any) -> dict[int, str]:
    return {code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}


def _options(tflite: Any, operator: Any, kind: str) -> Any:
    table = operator.BuiltinOptions()
    if table is None:
        return None
    options = getattr(tflite, kind)()
    options.Init(table.Bytes, table.Pos)
    return options


def _index_vector(tflite: Any, kind: int, table: Any) -> np.ndarray:
    vector = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def densify(tflite: Any, tensor: Any, values: np.ndarray) -> np.ndarray:
    """The dense array of a sparse tflite tensor: ``values`` are its stored (non-zero) values, its
    sparsity parameters say where they go (dimensions DENSE or SPARSE_CSR, in traversal order)."""
    sparsity = tensor.Sparsity()
    if sparsity.BlockMapLength():
        raise StgcnError("a block-sparse tflite tensor: not supported (MediaPipe's pose models have none)")
    shape = tensor.ShapeAsNumpy().tolist()
    order = sparsity.TraversalOrderAsNumpy().tolist()
    dense = np.zeros(shape, values.dtype)
    # walk the dimensions in traversal order, keeping for each partial index its position in the
    # level's storage: DENSE levels multiply, SPARSE_CSR levels list their indices per parent
    positions: list[tuple[tuple[int, ...], int]] = [((), 0)]
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        grown = []
        if meta.Format() == 0:  # DENSE
            size = meta.DenseSize()
            for index, position in positions:
                grown += [((*index, i), position * size + i) for i in range(size)]
        else:
            segments = _index_vector(tflite, meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _index_vector(tflite, meta.ArrayIndicesType(), meta.ArrayIndices())
            for index, position in positions:
                grown += [((*index, int(indices[k])), k) for k in range(segments[position], segments[position + 1])]
        positions = grown
    for index, position in positions:
        dense[tuple(index[order.index(axis)] for axis in range(len(shape)))] = values[position]
    return dense


class TfliteNetwork(nn.Module):
    """A tflite model's single graph run by PyTorch. ``forward`` takes the tflite input's layout
    (N, H, W, C) and returns the outputs in the file's order and layouts, for any batch N.

    ``outputs``: the names of the outputs to compute, in the order to return them (default: all);
    operators that feed none of them are left out, with their weights."""

    def __init__(self, path: str | os.PathLike[str], outputs: Sequence[str] | None = None) -> None:
        super().__init__()
        tflite = require("tflite", "pipeline", "Reading MediaPipe's .tflite pose models")
        self.path = Path(path)
        model = tflite.Model.GetRootAsModel(self.path.read_bytes(), 0)
        if model.SubgraphsLength() != 1:
            raise StgcnError(f"{self.path.name} has {model.SubgraphsLength()} graphs; one is expected")
        graph = model.Subgraphs(0)
        names = _operator_names(tflite)
        self.shapes = [graph.Tensors(i).ShapeAsNumpy().tolist() if graph.Tensors(i).ShapeLength() else []
                       for i in range(graph.TensorsLength())]
        constants: dict[int, np.ndarray] = {}
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray) and data.size:
                values = data.view(_DTYPES[tensor.Type()])
                constants[i] = (densify(tflite, tensor, values) if tensor.Sparsity() is not None
                                else values.reshape(self.shapes[i]))
        self.steps: list[_Operator] = []
        for k in range(graph.OperatorsLength()):
            operator = graph.Operators(k)
            code = model.OperatorCodes(operator.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            sources = [int(i) for i in operator.InputsAsNumpy()]
            results = [int(i) for i in operator.OutputsAsNumpy()]
            if name in ("DEQUANTIZE", "DENSIFY") and sources[0] in constants:  # weights kept packed: unpack once
                value = constants[sources[0]]
                constants[results[0]] = value.astype(np.float32) if name == "DEQUANTIZE" else value
                continue
            if name not in _OPERATORS:
                raise StgcnError(f"{self.path.name} uses the tflite operator {name}, which stgcn-rt cannot run")
            self.steps.append(_Operator(name, sources, results, _options(tflite, operator, _OPTIONS[name])
                                        if name in _OPTIONS else None))
        self.input_index = int(graph.Inputs(0))
        self.output_indices = [int(graph.Outputs(i)) for i in range(graph.OutputsLength())]
        self.output_names = [graph.Tensors(i).Name().decode() for i in self.output_indices]
        if outputs is not None:
            unknown = sorted(set(outputs) - set(self.output_names))
            if unknown:
                raise StgcnError(f"{self.path.name} has no output {', '.join(unknown)} (it has "
                                 f"{', '.join(self.output_names)})")
            self.output_indices = [self.output_indices[self.output_names.index(name)] for name in outputs]
            self.output_names = list(outputs)
            self.steps = _feeding(self.steps, self.output_indices)
        self.constants = constants
        self.weights = nn.ParameterDict()  # the float constants the steps read, in PyTorch's layouts
        for step in self.steps:
            _OPERATORS[step.name].prepare(self, step)

    def weight(self, tensor: int) -> torch.Tensor:
        return self.weights[str(tensor)]

    def channels_last(self) -> TfliteNetwork:
        """Keep the convolutions' weights channels-last, the layout the (NHWC) input arrives in, so
        that cuDNN runs its NHWC kernels (faster in fp16 on a GPU); the same results."""
        for weight in self.weights.values():
            if weight.dim() == 4:
                weight.data = weight.data.contiguous(memory_format=torch.channels_last)
        return self

    def keep(self, tensor: int, value: np.ndarray) -> None:
        """Make the constant ``tensor`` a (frozen) parameter in the layout the operator reads."""
        self.weights[str(tensor)] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(value)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[int, torch.Tensor] = {self.input_index: x.permute(0, 3, 1, 2)}  # NHWC in, NCHW inside
        for step in self.steps:
            values[step.outputs[0]] = _OPERATORS[step.name].run(self, step, values)
        return [to_tflite_layout(values[i]) for i in self.output_indices]


def _feeding(steps: list[_Operator], tensors: list[int]) -> list[_Operator]:
    """The steps, in order, that ``tensors`` depend on."""
    producers = {output: k for k, step in enumerate(steps) for output in step.outputs}
    needed: set[int] = set()
    pending = list(tensors)
    while pending:
        k = producers.get(pending.pop())
        if k is not None and k not in needed:
            needed.add(k)
            pending.extend(steps[k].inputs)
    return [step for k, step in enumerate(steps) if k in needed]


def to_tflite_layout(value: torch.Tensor) -> torch.Tensor:
    return value.permute(0, 2, 3, 1) if value.dim() == 4 else value


def to_torch_layout(value: torch.Tensor) -> torch.Tensor:
    return value.permute(0, 3, 1, 2) if value.dim() == 4 else value


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _padding(network: TfliteNetwork, step: _Operator, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], padding: int) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """An operator's padding from its (static) input shape: (the symmetric part the PyTorch operator
    takes, the F.pad of the rest or None). TensorFlow's SAME puts an odd pixel after."""
    if padding != SAME:
        return (0, 0), None
    _, height, width, _ = network.shapes[step.inputs[0]]
    top, bottom = same_padding(height, kernel[0], stride[0], dilation[0])
    left, right = same_padding(width, kernel[1], stride[1], dilation[1])
    if top == bottom and left == right:
        return (top, left), None
    return (0, 0), (left, right, top, bottom)


class _Stateless:
    """An operator with nothing to prepare ahead of its runs."""

    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        pass


class _Convolution:
    depthwise = False

    @classmethod
    def prepare(cls, network: TfliteNetwork, step: _Operator) -> None:
        weight = network.constants[step.inputs[1]]  # (O, KH, KW, I), or (1, KH, KW, C*mult) depthwise
        network.keep(step.inputs[1], weight.transpose(3, 0, 1, 2) if cls.depthwise else weight.transpose(0, 3, 1, 2))
        if len(step.inputs) > 2 and step.inputs[2] >= 0:
            network.keep(step.inputs[2], network.constants[step.inputs[2]])
        o = step.options
        stride, dilation = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
        padding, pad = _padding(network, step, (weight.shape[1], weight.shape[2]), stride, dilation, o.Padding())
        step.options = (stride, dilation, padding, pad, _ACTIVATIONS[o.FusedActivationFunction()])

    @classmethod
    def run(cls, network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        stride, dilation, padding, pad, activation = step.options
        x, weight = values[step.inputs[0]], network.weight(step.inputs[1])
        bias = network.weight(step.inputs[2]) if len(step.inputs) > 2 and step.inputs[2] >= 0 else None
        if pad is not None:
            x = F.pad(x, pad).contiguous(memory_format=torch.channels_last if weight.is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format)
        y = F.conv2d(x, weight, bias, stride, padding, dilation, groups=x.shape[1] if cls.depthwise else 1)
        return activation(y)


class _Depthwise(_Convolution):
    depthwise = True


class _Add:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        for tensor in step.inputs:
            if tensor in network.constants:
                network.keep(tensor, _nchw(network.constants[tensor]))

        step.options = _ACTIVATIONS[step.options.FusedActivationFunction()]

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        a, b = (values[t] if t in values else network.weight(t) for t in step.inputs)
        return step.options(a + b)


def _nchw(value: np.ndarray) -> np.ndarray:
    return value.transpose(0, 3, 1, 2) if value.ndim == 4 else value


class _Pad:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        pads = network.constants[step.inputs[1]]  # (4, 2) in NHWC order
        if pads.shape != (4, 2) or pads[0].any() or pads[3].any():
            raise StgcnError(f"{network.path.name}: a PAD of the batch or channel axis is not supported")
        step.options = (int(pads[2, 0]), int(pads[2, 1]), int(pads[1, 0]), int(pads[1, 1]))  # F.pad's order

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        return F.pad(values[step.inputs[0]], step.options)


class _DepthToSpace:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        step.options = step.options.BlockSize()

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        """TensorFlow's depth-to-space (DCR: channel (i * b + j) * C + c goes to offset (i, j) of channel c)."""
        x, b = values[step.inputs[0]], step.options
        n, channels, h, w = x.shape
        c = channels // (b * b)
        return x.reshape(n, b, b, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * b, w * b)


class _ResizeBilinear:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        if step.options.AlignCorners() or not step.options.HalfPixelCenters():
            raise StgcnError(f"{network.path.name}: only half-pixel bilinear resizing is supported")
        step.options = tuple(int(v) for v in network.constants[step.inputs[1]])  # (height, width)

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        return F.interpolate(values[step.inputs[0]], size=step.options, mode="bilinear", align_corners=False)


class _Reshape:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        step.options = network.shapes[step.outputs[0]][1:]  # the batch axis stays the caller's

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        x = to_tflite_layout(values[step.inputs[0]])
        return to_torch_layout(x.reshape(x.shape[0], *step.options))


class _Concatenation:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        rank = len(network.shapes[step.outputs[0]])
        axis = step.options.Axis() % rank
        if step.options.FusedActivationFunction():
            raise StgcnError(f"{network.path.name}: a concatenation with an activation is not supported")
        step.options = {1: 2, 2: 3, 3: 1}.get(axis, axis) if rank == 4 else axis  # NHWC axis -> NCHW

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        return torch.cat([values[t] for t in step.inputs], dim=step.options)


class _MaxPool:
    @staticmethod
    def prepare(network: TfliteNetwork, step: _Operator) -> None:
        o = step.options
        kernel, stride = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        padding, pad = _padding(network, step, kernel, stride, (1, 1), o.Padding())
        if padding != (0, 0):  # PyTorch pads max pooling with -inf as TensorFlow does, but only symmetric pads
            pad, padding = (padding[1], padding[1], padding[0], padding[0]), (0, 0)
        step.options = (kernel, stride, pad, _ACTIVATIONS[o.FusedActivationFunction()])

    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        kernel, stride, pad, activation = step.options
        x = values[step.inputs[0]]
        if pad is not None:
            x = F.pad(x, pad, value=-math.inf)
        return activation(F.max_pool2d(x, kernel, stride))


class _Logistic(_Stateless):
    @staticmethod
    def run(network: TfliteNetwork, step: _Operator, values: dict[int, torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(values[step.inputs[0]])


_OPERATORS: dict[str, Any] = {
    "CONV_2D": _Convolution, "DEPTHWISE_CONV_2D": _Depthwise, "ADD": _Add, "PAD": _Pad,
    "DEPTH_TO_SPACE": _DepthToSpace, "RESIZE_BILINEAR": _ResizeBilinear, "RESHAPE": _Reshape,
    "CONCATENATION": _Concatenation, "MAX_POOL_2D": _MaxPool, "LOGISTIC": _Logistic,
}
#: each operator's options table in the tflite schema
_OPTIONS = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions", "ADD": "AddOptions",
            "DEPTH_TO_SPACE": "DepthToSpaceOptions", "RESIZE_BILINEAR": "ResizeBilinearOptions",
            "CONCATENATION": "ConcatenationOptions", "MAX_POOL_2D": "Pool2DOptions"}
