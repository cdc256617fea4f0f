"""CUDA graphs and compiling of the pose stages: what holds without a GPU (tests/pose/test_blazepose_gpu.py checks
them on one)."""

import torch

from stgcn_rt.pose.graphs import GraphedCall


def test_inputs_on_the_cpu_run_the_function_itself_and_capture_nothing():
    calls = []

    def stage(frames, scale, rows):
        calls.append((frames.shape, scale, rows.shape))
        return (frames[rows] * scale,)

    graphed = GraphedCall(stage, resident=1)
    (out,) = graphed(torch.ones(3, 4, 4, 3), 2.0, torch.tensor([0, 2]))
    assert torch.equal(out, torch.full((2, 4, 4, 3), 2.0))
    assert calls == [((3, 4, 4, 3), 2.0, (2,))]
    assert graphed.captured == 0


def test_a_stage_that_cannot_compile_runs_uncompiled_after_one_warning(monkeypatch, caplog):
    """Where torch.compile fails (no working Triton, say), the stage runs its function itself from then on."""
    import torch._dynamo

    from stgcn_rt.pose import graphs
    from stgcn_rt.pose.graphs import CompiledCall

    graphs._warn_uncompiled.cache_clear()

    compilations = []

    def no_compiler(graph, example_inputs):
        compilations.append(graph)
        raise RuntimeError("Cannot find a working triton installation")

    compile_for_real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda function, **options: compile_for_real(function, backend=no_compiler,
                                                                                    **options))
    torch._dynamo.reset()
    compiled = CompiledCall(lambda x: (x * 2,))
    for _ in range(2):
        (out,) = compiled(torch.ones(3))
        assert torch.equal(out, torch.full((3,), 2.0))
    assert len(compilations) == 1
    CompiledCall(lambda x: (x + 1,))(torch.ones(3))  # another stage failing for the same reason: no second warning
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "BlazePose runs uncompiled: torch.compile failed (RuntimeError: Cannot find a working triton installation)"]
