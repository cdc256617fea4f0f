"""The package's layers import one way: a module may import its own layer and the layers below it,
never one above (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import stgcn_rt

#: lowest first; a module belongs to the first entry that names it or a package above it
LAYERS = [
    ("shared contracts", ["stgcn_rt", "stgcn_rt.errors", "stgcn_rt.files", "stgcn_rt.urls", "stgcn_rt.quiet",
                          "stgcn_rt.window", "stgcn_rt.artefact", "stgcn_rt.data"]),
    ("model", ["stgcn_rt.model"]),
    ("kernels", ["stgcn_rt.kernels"]),
    ("onnx", ["stgcn_rt.onnx"]),
    ("export", ["stgcn_rt.export"]),
    ("runtime", ["stgcn_rt.runtime"]),
    ("pose, pipeline, serve", ["stgcn_rt.pose", "stgcn_rt.pipeline", "stgcn_rt.serve"]),
    ("bench", ["stgcn_rt.bench"]),
    ("commands", ["stgcn_rt.cli", "stgcn_rt.demo", "stgcn_rt.info"]),
]
ROOT = Path(stgcn_rt.__file__).parent


def layer_of(module: str) -> int:
    """The rank in LAYERS of ``module``: its own entry, else its package's (the root package last)."""
    for name in (module, *(module.rsplit(".", k)[0] for k in range(1, module.count(".") + 1))):
        for rank, (_, members) in enumerate(LAYERS):
            if name in members and (name != "stgcn_rt" or module == "stgcn_rt"):
                return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported(source: str):
    """The stgcn_rt modules ``source`` imports, wherever in the file (inside functions too)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("stgcn_rt"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("stgcn_rt"):
            yield node.module


def upward_imports(module: str, source: str) -> list[str]:
    rank = layer_of(module)
    return [f"{module} ({LAYERS[rank][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
            for target in imported(source) if layer_of(target) > rank]


def test_no_layer_imports_a_higher_one():
    upward = [line for module, path in modules() for line in upward_imports(module, path.read_text())]
    assert not upward, "\n".join(upward)


def test_an_upward_import_inside_a_function_is_seen():
    source = "import numpy\n\ndef check():\n    from stgcn_rt.runtime.classifier import Classifier\n"
    assert upward_imports("stgcn_rt.export.validate", source) == [
        "stgcn_rt.export.validate (export) imports stgcn_rt.runtime.classifier (runtime)"]
    assert upward_imports("stgcn_rt.bench.run", source) == []
    assert layer_of("stgcn_rt.window") == 0 and layer_of("stgcn_rt.cli") == len(LAYERS) - 1
