"""BlazePose on a CUDA GPU, fp32 and fp16, against the CPU. Run through the device tool; skipped here."""


import numpy as np
import pytest
import torch
from helpers import Answers, gpu_report

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
pytest.importorskip("tflite")


@pytest.fixture(scope="module")
def frames():
    cv2 = pytest.importorskip("cv2")
    from stgcn_rt.data import demo_video

    capture = cv2.VideoCapture(str(demo_video()))
    return [cv2.resize(capture.read()[1], (640, 480)) for _ in range(60)]


def run(frames, **options):
    from stgcn_rt.pose.blazepose import BlazePose

    pose = BlazePose(**options)
    return np.stack([pose.process({"cam": image})["cam"] for image in frames])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_the_landmark_network_on_the_gpu_gives_the_cpus_landmarks(frames, dtype):
    """One real 256 crop through the landmark network on the GPU and on the CPU (fp32): the 39
    landmarks within 0.05 px of the crop in fp32 (TF32 off), within 1 px in fp16."""
    from stgcn_rt.pose.models import model_file
    from stgcn_rt.pose.tflite_graph import TfliteNetwork

    cv2 = pytest.importorskip("cv2")
    crop = torch.from_numpy(cv2.resize(cv2.cvtColor(frames[30], cv2.COLOR_BGR2RGB), (256, 256))[None] / 255.0).float()
    cpu = TfliteNetwork(model_file("landmarks")).eval()
    gpu = TfliteNetwork(model_file("landmarks")).eval().to("cuda", dtype).channels_last()
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        expected = cpu(crop)[0].reshape(39, 5)[:, :2]
        got = gpu(crop.to("cuda", dtype))[0].float().cpu().reshape(39, 5)[:, :2]
    diff = float((got - expected).abs().max())
    gpu_report(f"landmark network {dtype} cuda vs cpu fp32, one crop", max_px=diff)
    assert diff <= (0.05 if dtype == torch.float32 else 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_the_gpu_tracks_as_the_cpu_does(frames, dtype):
    """60 frames of the demo clip, tracked on the GPU and on the CPU (fp32): mean distance of the
    landmarks in pixels of the 640 frame (a landmark whose heatmap cell flips moves by a few pixels
    for a frame, as between MediaPipe and the CPU here)."""
    cpu = run(frames)
    gpu = run(frames, device="cuda", dtype=dtype)
    pixels = np.hypot((gpu[..., 0] - cpu[..., 0]) * 640, (gpu[..., 1] - cpu[..., 1]) * 480)
    gpu_report(f"blazepose {dtype} cuda vs cpu fp32, tracked", mean_px=float(pixels.mean()), max_px=float(pixels.max()),
           p95_px=float(np.percentile(pixels, 95)))
    assert pixels.mean() <= (0.5 if dtype == torch.float32 else 1.0)


def test_many_cameras_in_one_call_give_each_its_own_pose(frames):
    """Eight cameras, each a copy of the clip started at another frame: one call per time step, each
    camera's landmarks as if it ran alone."""
    from stgcn_rt.pose.blazepose import BlazePose

    # uncompiled: nine compilations would take minutes (the compiled stages have a test of their own)
    together = BlazePose(device="cuda", compiled=False)
    alone = [BlazePose(device="cuda", compiled=False) for _ in range(8)]
    for step in range(20):
        batch = {f"cam{c}": frames[(step + 5 * c) % len(frames)] for c in range(8)}
        out = together.process(batch)
        for c, pose in enumerate(alone):
            single = pose.process({f"cam{c}": batch[f"cam{c}"]})[f"cam{c}"]
            # a batch's convolutions may take other cuDNN algorithms than one image's: equal to 1e-3 (0.6
            # px), where another camera's pose would be a tenth of the frame away
            np.testing.assert_allclose(out[f"cam{c}"], single, atol=1e-3)


def test_frames_in_pinned_shared_slots_pose_as_their_copies_do(frames):
    """Frames decoded into shared memory (as the pipeline's decoding processes write them) and
    page-locked for the GPU give the same landmarks as the same frames in ordinary memory; the
    pinning is undone."""
    import multiprocessing

    from stgcn_rt.pose.blazepose import BlazePose

    block = np.frombuffer(multiprocessing.get_context("spawn").RawArray("B", 4 * 480 * 640 * 3),
                          np.uint8).reshape(4, 480, 640, 3)
    pinned, plain = BlazePose(device="cuda"), BlazePose(device="cuda")
    assert pinned.networks.pin(block) and torch.from_numpy(block[2]).is_pinned()
    for k, image in enumerate(frames[:12]):
        block[k % 4] = image
        got = pinned.process({"cam": block[k % 4]})["cam"]
        np.testing.assert_array_equal(got, plain.process({"cam": image.copy()})["cam"])
    pinned.networks.unpin()
    assert not torch.from_numpy(block[2]).is_pinned()


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graphs"])
def test_two_lanes_on_their_own_streams_pose_as_one_does(frames, graphs, monkeypatch):
    """The pipeline's stage on a GPU: eight cameras dealt to two lanes (threads, each on its own CUDA
    stream, sharing the networks, with CUDA graphs each its own) get what one lane gives them, frame by frame."""
    from stgcn_rt.pipeline.pose_stage import BlazePoseStage
    from stgcn_rt.pose import blazepose

    monkeypatch.setattr(blazepose, "CUDA_GRAPHS", graphs)
    results = {}
    for lanes in (1, 2):
        answers = Answers()
        with BlazePoseStage(answers, "cuda", "fp32", cameras=8, lanes=lanes) as stage:
            for c in range(8):
                for k in range(20):
                    stage.submit(f"cam{c}", frames[(k + 5 * c) % len(frames)], (c, k))
            results[lanes] = {c: np.stack([r.keypoints for r in answers.wait([(c, k) for k in range(20)], 300)])
                              for c in range(8)}
    for c in range(8):
        assert results[1][c].any(axis=(1, 2, 3)).all()
        np.testing.assert_allclose(results[2][c], results[1][c], atol=1e-3)


def test_blazepose_in_a_process_of_its_own_pins_the_frames_there_and_poses_as_here(frames):
    """The pipeline's stage on a GPU: four cameras' frames in a block shared as the decoders share
    it, fed to a spawned process (which page-locks the block) as the decoders feed it, and posed by
    the stage in this process (fp32, CUDA graphs in both): the same keypoints, frame by frame."""
    import multiprocessing

    from stgcn_rt.pipeline.decoders import shared_frames
    from stgcn_rt.pipeline.pose_process import PoseProcess
    from stgcn_rt.pipeline.pose_stage import BlazePoseStage

    shared, block = shared_frames((4, 20, *frames[0].shape))
    for c in range(4):
        block[c] = np.stack([frames[(k + 9 * c) % len(frames)] for k in range(20)])
    fed, here = Answers(), Answers()
    feed = multiprocessing.get_context("spawn").Queue()
    with PoseProcess(fed, shared, block, feed, device="cuda", cameras=4) as process:
        assert process.pinned
        feed.put([(c, k, k, 0.0) for k in range(20) for c in range(4)])
        posed = {c: np.stack([r.keypoints for r in fed.wait([(c, k, k, 0.0) for k in range(20)], 300)])
                 for c in range(4)}
    with BlazePoseStage(here, "cuda", cameras=4) as stage:
        for c in range(4):
            for k in range(20):
                stage.submit(c, block[c, k], (c, k))
        expected = {c: np.stack([r.keypoints for r in here.wait([(c, k) for k in range(20)], 300)]) for c in range(4)}
    for c in range(4):
        assert expected[c].any(axis=(1, 2, 3)).all()
        np.testing.assert_allclose(posed[c], expected[c], atol=1e-4)


def test_cuda_graphs_give_the_eager_stages_outputs_on_each_stream(frames):
    """The landmark stage (crops, network, refinement) through its CUDA graphs (one per batch shape
    and stream, reading each stream's frame buffer in place) and eagerly, on the same regions: the
    same landmarks, on the default stream and twice on a second one (one graph each); new frames in
    the buffer give their own landmarks."""
    from stgcn_rt.pose.blazepose import BlazePoseNetworks

    graphed, eager = BlazePoseNetworks("cuda", graphs=True), BlazePoseNetworks("cuda", graphs=False)
    rois = np.array([[320.0, 240.0, 300.0, 300.0, 0.1], [300.0, 250.0, 280.0, 280.0, -0.2],
                     [330.0, 230.0, 320.0, 320.0, 0.0]])
    side = torch.cuda.Stream()
    for first in (0, 30):
        images = list(frames[first:first + 2])
        expected = eager.landmarks(eager.frames(images), [0, 1, 1], rois)
        for stream in (torch.cuda.current_stream(), side, side):
            with torch.cuda.stream(stream):
                got = graphed.landmarks(graphed.frames(images), [0, 1, 1], rois)
            for out, want in zip(got, expected):
                np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    assert graphed._landmark_stage.captured == 2


def test_tracking_through_cuda_graphs_gives_the_eager_landmarks(frames):
    """60 frames of the clip tracked with the networks in CUDA graphs (uncompiled: the compiled stages
    have a test of their own) and eagerly: the same landmarks."""
    from stgcn_rt.pose.blazepose import BlazePoseNetworks

    graphed = run(frames, networks=BlazePoseNetworks("cuda", torch.float16, graphs=True, compiled=False))
    eager = run(frames, networks=BlazePoseNetworks("cuda", torch.float16, graphs=False))
    np.testing.assert_allclose(graphed, eager, atol=1e-3)


def test_compiled_stages_give_the_uncompiled_crops_and_landmarks(frames):
    """Where Triton is installed the stages in CUDA graphs are compiled (fused kernels). The crops of
    real frames come out bit for bit as uncompiled (OpenCV's rounding kept; regions turned every way,
    some reaching out of the frame) at several batch sizes; the landmarks of the same regions agree
    to fp32's rounding (1e-4 of the frame), and 60 frames tracked compiled and uncompiled (fp32,
    graphs) agree as the GPU and the CPU do (mean 0.5 px: tracking carries a rounding on)."""
    pytest.importorskip("triton")
    import torch._dynamo

    from stgcn_rt.pose.blazepose import BlazePoseNetworks, warp
    from stgcn_rt.pose.geometry import DETECTOR_SIZE, LANDMARK_SIZE, crop_affines
    from stgcn_rt.pose.graphs import CompiledCall

    torch._dynamo.reset()  # other tests' compilations do not count against this one's limit
    images = torch.from_numpy(np.stack(frames[:8])).cuda()
    rng = np.random.default_rng(0)
    compiled = {size: CompiledCall(lambda f, i, a, size=size: (warp(f, i, a, size, size == LANDMARK_SIZE),))
                for size in (LANDMARK_SIZE, DETECTOR_SIZE)}
    for count in (1, 5, 64):
        rois = np.stack([rng.uniform(0.0, 1.0, count), rng.uniform(0.0, 1.0, count), rng.uniform(0.1, 0.9, count),
                         rng.uniform(0.1, 0.9, count), rng.uniform(-np.pi, np.pi, count)], axis=1)
        index = torch.from_numpy(rng.integers(0, 8, count)).cuda()
        for size, call in compiled.items():
            affine = torch.from_numpy(crop_affines(rois, 640, 480, size)).cuda()
            assert torch.equal(call(images, index, affine)[0], warp(images, index, affine, size, size == LANDMARK_SIZE))
    torch._dynamo.reset()
    networks = BlazePoseNetworks("cuda", graphs=True, compiled=True)
    plain = BlazePoseNetworks("cuda", graphs=True, compiled=False)
    assert networks.compiled and not plain.compiled
    rois = np.array([[0.5, 0.45, 0.5, 0.6, 0.1], [0.48, 0.5, 0.45, 0.6, -0.2], [0.52, 0.47, 0.5, 0.66, 0.0]])
    for first in (0, 30):
        batch = list(frames[first:first + 2])
        got = networks.landmarks(networks.frames(batch), [0, 1, 1], rois)
        for out, want in zip(got, plain.landmarks(plain.frames(batch), [0, 1, 1], rois)):
            np.testing.assert_allclose(out, want, atol=1e-4)
    tracked, untracked = run(frames, networks=networks), run(frames, networks=plain)
    pixels = np.hypot((tracked[..., 0] - untracked[..., 0]) * 640, (tracked[..., 1] - untracked[..., 1]) * 480)
    gpu_report("blazepose fp32 graphs, compiled vs uncompiled, tracked", mean_px=float(pixels.mean()),
               max_px=float(pixels.max()))
    assert tracked.any(axis=(1, 2)).all() and pixels.mean() <= 0.5
