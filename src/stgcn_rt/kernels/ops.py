"""The GPU kernels of the ST-GCN network, written in OpenAI's Triton: two launches per block, both
streams in each launch.

Activations are ``(S, R, C)`` fp16: S stacked streams, R = batch x frames x joints rows
(channels-last, joints fastest), C channels.

- :func:`graph_conv` is the graph convolution with the BatchNorm and ReLU after it, in one kernel.
  It aggregates first and multiplies second: for partition k, output joint w takes the weighted
  sum of its few neighbours' input rows (adjacency x edge importance), then one tile product with
  partition k's weights, accumulated over k. Same sum as conv-then-einsum, without the
  (R, K*C) intermediate the GEMM-then-gather order writes and reads back.
- :func:`temporal_conv` is the 9x1 temporal convolution as an implicit GEMM (nine shifted row
  tiles, zero outside the clip), with the folded BatchNorm, the residual (identity, or the strided
  1x1 convolution as a tenth product into the same accumulator) and the final ReLU. On a Hopper
  GPU, :func:`temporal_conv` takes a form whose loads go through the tensor memory accelerator:
  each tap's rows are one box of a (clips, frames x joints, C) descriptor, the rows outside the
  clip arriving as zeros (the convolution's padding), no address arithmetic per row. For a
  strided one the graph convolution before it writes each clip's frames split by their index
  mod the stride (planes), so a tap's rows are again one box.
- :func:`prepare_input` turns the (N, C, T, V, M) fp32 windows into the blocks' stacked rows: the
  motion stream's temporal differences, the input BatchNorm and the cast, in one pass;
  :func:`pool_and_classify` averages the last block's rows per window and applies both classifiers,
  their sum and its softmax. With the tensor memory accelerator's loads the last temporal
  convolution stores column sums of its tiles' row groups instead of its rows, and
  :func:`classify_row_sums` pools them in the classifier kernel (no pooling kernel). With them a
  forward pass launches nothing but the project's kernels, and reads its input from / writes its
  results to pinned host memory where asked (no copies).

Each kernel serves every stream (as a grid axis; the classifier loops over them), so a two-stream
model runs both streams in one launch: a forward pass is 22 launches at any batch size (23 with
pointer loads). Under
``TRITON_INTERPRET=1`` Triton runs them on CPU tensors (how the tests check them without a GPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from stgcn_rt.kernels.tuning import INTERPRETED, autotune

#: compile options every launch names: fused multiply-adds, the form every measurement of these
#: kernels used (Triton 3.10 stops fusing by default, and Triton 3.9 warns that it will)
_COMPILE_OPTIONS = {"enable_fp_fusion": True}


# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages): small row tiles give a batch of 1 enough programs
# for the GPU's 132 SMs, large ones reuse each loaded tile at large batches. The graph
# convolution's channel loop is unrolled where a size has one stage, software-pipelined where it
# has more (at batch 1 the unrolled loop wins up to 64 input channels, the pipelined one from 128)
_GRAPH_SIZES = [(32, 64, 64, 4, 1), (64, 64, 64, 4, 1), (64, 128, 64, 4, 1), (128, 128, 64, 8, 1),
                (64, 128, 32, 4, 1), (32, 32, 32, 2, 1), (64, 64, 32, 4, 3), (64, 128, 32, 4, 3), (64, 64, 64, 4, 3),
                (128, 128, 32, 8, 3)]
_TEMPORAL_SIZES = [(32, 64, 64, 4, 3), (64, 64, 64, 4, 3), (64, 128, 64, 4, 4), (128, 128, 32, 8, 3),
                   (128, 256, 64, 8, 3), (32, 64, 128, 4, 3), (32, 128, 128, 4, 2), (64, 128, 128, 8, 3)]
# the temporal convolution with tensor-memory-accelerator loads: deeper pipelines than the
# pointer loads' (the loads cost the threads no address arithmetic and no registers)
_TEMPORAL_TMA_SIZES = [(64, 64, 64, 4, 4), (64, 128, 128, 8, 4), (64, 128, 64, 4, 4), (64, 128, 128, 8, 3),
                       (64, 64, 64, 4, 3), (128, 128, 64, 8, 4), (128, 256, 64, 8, 3), (128, 128, 64, 8, 3),
                       (64, 128, 256, 8, 3), (64, 64, 256, 4, 3), (128, 128, 256, 8, 3)]


def size_class(rows: int) -> int:
    """Row counts within a power of two share one tuning."""
    return rows.bit_length()


@triton.jit
def _mix_and_multiply(acc, x_stream, index_ptr, weight_ptr, w_ptr, s, joint, frame_row, mask_m, offs_n, mask_n, c0, V,
                      C_IN: tl.constexpr, C_OUT: tl.constexpr, K: tl.constexpr, D: tl.constexpr,
                      DEPTHS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """One channel block of the graph convolution: per partition, each row's weighted neighbours
    (fp32), times the partition's weights, into ``acc``."""
    offs_c = c0 + tl.arange(0, BLOCK_K)
    mask_c = offs_c < C_IN
    for k in tl.static_range(K):
        mixed = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for d in tl.static_range((DEPTHS >> (4 * k)) & 15):
            table = ((s * K + k) * D + d) * V + joint
            neighbour = tl.load(index_ptr + table, mask=mask_m, other=0)
            coeff = tl.load(weight_ptr + table, mask=mask_m, other=0.0)
            src = (frame_row + neighbour).to(tl.int64) * C_IN
            xv = tl.load(x_stream + src[:, None] + offs_c[None, :],
                         mask=mask_m[:, None] & mask_c[None, :], other=0.0)
            mixed += coeff[:, None] * xv.to(tl.float32)
        wk = tl.load(w_ptr + ((s * K + k) * C_IN + offs_c)[:, None] * C_OUT + offs_n[None, :],
                     mask=mask_c[:, None] & mask_n[None, :], other=0.0)
        acc += tl.dot(mixed.to(wk.dtype), wk)
    return acc


# The tuned kernels take their batch-dependent integers (row and sample counts, the size class)
# unspecialized: Triton would otherwise compile every candidate tile again for each batch size that
# makes one of them 1 or a multiple of 16 (four sets of compilations for buckets 1 to 32, most of a
# first start). Their address arithmetic gets its alignment from the channel counts, not from these.
@autotune(_GRAPH_SIZES, ["ROWS_CLASS", "C_IN", "C_OUT", "PLANES"], pipelined_flag=True)
@triton.jit(do_not_specialize=["rows", "out_rows", "ROWS_CLASS"])
def _graph_conv_kernel(x_ptr, index_ptr, weight_ptr, w_ptr, bias_ptr, out_ptr,
                       rows, out_rows, T, V, ROWS_CLASS,
                       C_IN: tl.constexpr, C_OUT: tl.constexpr, K: tl.constexpr, D: tl.constexpr,
                       DEPTHS: tl.constexpr, PLANES: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PIPELINED: tl.constexpr):
    """DEPTHS packs each partition's neighbour count, 4 bits per partition: a partition gathers
    only its own count of neighbours (MediaPipe's 33 joints: 1, 4 and 1), not the table's D.

    PLANES: the output's frame layout (see :func:`graph_conv`); a program covers input rows in
    order and stores each at its place in the planes; the program with a clip's last frame also
    stores the zero rows of the planes' frames beyond the clip.

    PIPELINED: the channel blocks in a runtime loop that Triton software-pipelines (the next
    block's gathers overlap this block's products); otherwise unrolled, every gather of the tile
    issued together and the neighbour table read once."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    s = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < rows
    mask_n = offs_n < C_OUT
    joint = offs_m % V
    frame_row = offs_m - joint  # first row of this row's frame
    x_stream = x_ptr + s.to(tl.int64) * rows * C_IN
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if PIPELINED:
        for c0 in range(0, C_IN, BLOCK_K):
            acc = _mix_and_multiply(acc, x_stream, index_ptr, weight_ptr, w_ptr, s, joint, frame_row, mask_m, offs_n,
                                    mask_n, c0, V, C_IN, C_OUT, K, D, DEPTHS, BLOCK_M, BLOCK_K)
    else:
        for c0 in tl.static_range(0, C_IN, BLOCK_K):
            acc = _mix_and_multiply(acc, x_stream, index_ptr, weight_ptr, w_ptr, s, joint, frame_row, mask_m, offs_n,
                                    mask_n, c0, V, C_IN, C_OUT, K, D, DEPTHS, BLOCK_M, BLOCK_K)
    bias = tl.load(bias_ptr + (s * V + joint)[:, None] * C_OUT + offs_n[None, :],
                   mask=mask_m[:, None] & mask_n[None, :], other=0.0)
    y = tl.maximum(acc + bias, 0.0)
    out_stream = out_ptr + s.to(tl.int64) * out_rows * C_OUT
    mask = mask_m[:, None] & mask_n[None, :]
    if PLANES == 1:
        tl.store(out_stream + offs_m.to(tl.int64)[:, None] * C_OUT + offs_n[None, :], y.to(out_ptr.dtype.element_ty),
                 mask=mask)
    else:
        frame = offs_m // V
        t = frame % T
        per_plane = (T + PLANES - 1) // PLANES
        in_planes = ((frame // T) * PLANES + t % PLANES) * per_plane + t // PLANES  # the frame's place in the planes
        dest = (in_planes * V + joint).to(tl.int64)[:, None] * C_OUT + offs_n[None, :]
        tl.store(out_stream + dest, y.to(out_ptr.dtype.element_ty), mask=mask)
        # the planes after the last frame's have a frame beyond the clip, at the last frame's position
        for extra in tl.static_range(1, PLANES):
            beyond = (t == T - 1) & (t % PLANES + extra < PLANES)
            tl.store(out_stream + dest + extra * per_plane * V * C_OUT, tl.zeros_like(y).to(out_ptr.dtype.element_ty),
                     mask=mask & beyond[:, None])


@autotune(_TEMPORAL_SIZES, ["ROWS_CLASS", "C", "C_OUT", "C_RES", "STRIDE", "RESIDUAL"])
@triton.jit(do_not_specialize=["rows", "in_rows", "ROWS_CLASS"])
def _temporal_conv_kernel(y_ptr, w_ptr, bias_ptr, res_ptr, res_w_ptr, out_ptr,
                          rows, in_rows, T_OUT, T_IN, V, ROWS_CLASS,
                          C: tl.constexpr, C_OUT: tl.constexpr, C_RES: tl.constexpr,
                          TAPS: tl.constexpr, STRIDE: tl.constexpr, RESIDUAL: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """RESIDUAL: 0 none, 1 identity (res is the block input, same rows), 2 strided 1x1 conv."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    s = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < rows
    mask_n = offs_n < C_OUT
    joint = offs_m % V
    frame = offs_m // V
    t_out = frame % T_OUT
    sample = frame // T_OUT
    y_stream = y_ptr + s.to(tl.int64) * in_rows * C
    identity = _identity_residual(res_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C_OUT) if RESIDUAL == 1 else 0.0
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    steps = (C + BLOCK_K - 1) // BLOCK_K
    # one flat loop over (tap, channel block), so the software pipeline prefetches across taps
    for i in range(TAPS * steps):
        tap = i // steps
        offs_c = (i % steps) * BLOCK_K + offs_k
        t_in = t_out * STRIDE + tap - (TAPS - 1) // 2
        valid = mask_m & (t_in >= 0) & (t_in < T_IN)
        src = ((sample * T_IN + t_in) * V + joint).to(tl.int64) * C
        a = tl.load(y_stream + src[:, None] + offs_c[None, :], mask=valid[:, None] & (offs_c < C)[None, :], other=0.0)
        w = tl.load(w_ptr + ((s * TAPS + tap) * C + offs_c)[:, None] * C_OUT + offs_n[None, :],
                    mask=(offs_c < C)[:, None] & mask_n[None, :], other=0.0)
        acc += tl.dot(a, w)
    y = _temporal_result(acc, identity, bias_ptr, res_ptr, res_w_ptr, s, mask_m, offs_n, mask_n,
                         (sample * T_IN + t_out * STRIDE) * V + joint, in_rows, C_OUT, C_RES, RESIDUAL, BLOCK_K)
    _store_rows(y, out_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C_OUT)


@triton.jit
def _identity_residual(res_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C_OUT: tl.constexpr):
    """The block input's rows ``offs_m`` (an identity residual), in its storage type: loaded before
    the main loop, so the load's latency hides behind it."""
    tile = offs_m.to(tl.int64)[:, None] * C_OUT + offs_n[None, :]
    return tl.load(res_ptr + s.to(tl.int64) * rows * C_OUT + tile, mask=mask_m[:, None] & mask_n[None, :], other=0.0)


@triton.jit
def _temporal_result(acc, identity, bias_ptr, res_ptr, res_w_ptr, s, mask_m, offs_n, mask_n, res_rows, in_rows,
                     C_OUT: tl.constexpr, C_RES: tl.constexpr, RESIDUAL: tl.constexpr, BLOCK_K: tl.constexpr):
    """The temporal convolution's epilogue up to its store: the residual (1: ``identity``, the
    :func:`_identity_residual` tile; 2: the 1x1 convolution of the block input's rows ``res_rows``),
    the bias, the ReLU; fp32."""
    if RESIDUAL == 2:
        offs_k = tl.arange(0, BLOCK_K)
        res_stream = res_ptr + s.to(tl.int64) * in_rows * C_RES
        src = res_rows.to(tl.int64) * C_RES
        for c0 in range(0, C_RES, BLOCK_K):
            offs_c = c0 + offs_k
            mask_c = offs_c < C_RES
            a = tl.load(res_stream + src[:, None] + offs_c[None, :], mask=mask_m[:, None] & mask_c[None, :], other=0.0)
            w = tl.load(res_w_ptr + (s * C_RES + offs_c)[:, None] * C_OUT + offs_n[None, :],
                        mask=mask_c[:, None] & mask_n[None, :], other=0.0)
            acc += tl.dot(a, w)
    acc += tl.load(bias_ptr + s * C_OUT + offs_n, mask=mask_n, other=0.0)[None, :]
    if RESIDUAL == 1:
        acc += identity.to(tl.float32)
    return tl.maximum(acc, 0.0)


@triton.jit
def _store_rows(y, out_ptr, s, offs_m, mask_m, offs_n, mask_n, rows, C_OUT: tl.constexpr):
    tile = offs_m.to(tl.int64)[:, None] * C_OUT + offs_n[None, :]
    tl.store(out_ptr + s.to(tl.int64) * rows * C_OUT + tile, y.to(out_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_n[None, :])


#: rows per partial sum of the pooled temporal convolution (``temporal_conv(pool=True)``); its tiles'
#: heights are multiples of it
POOL_ROWS = 64


@triton.jit
def _store_row_sums(y, sums_ptr, clip, r0, mask_m, offs_n, mask_n, clip_rows, C_OUT: tl.constexpr,
                    POOL_ROWS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Each POOL_ROWS-row group's column sums of the tile ``y`` (one clip's rows from ``r0``), fp32,
    at row clip x groups per clip + group of ``sums_ptr``."""
    tl.static_assert(BLOCK_M % POOL_ROWS == 0)
    groups: tl.constexpr = BLOCK_M // POOL_ROWS
    sums = tl.sum(tl.reshape(tl.where(mask_m[:, None], y, 0.0), (groups, POOL_ROWS, BLOCK_N)), axis=1)
    group = r0 // POOL_ROWS + tl.arange(0, groups)
    per_clip = (clip_rows + POOL_ROWS - 1) // POOL_ROWS
    tl.store(sums_ptr + (clip.to(tl.int64) * per_clip + group)[:, None] * C_OUT + offs_n[None, :], sums,
             mask=(group < per_clip)[:, None] & mask_n[None, :])


@triton.jit
def _tma_taps_product(y_desc, w_desc, clip, s, r0, n0, V, C: tl.constexpr, TAPS: tl.constexpr, STRIDE: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FP8: tl.constexpr = False,
                     C_OUT: tl.constexpr = 0):
    """The main loop of :func:`_temporal_conv_tma_kernel`: the fp32 (BLOCK_M, BLOCK_N) sum over the
    taps and channel blocks of output rows ``r0``.. of clip ``clip`` times stream ``s``'s weights
    from column ``n0``, both operands loaded through the tensor memory accelerator (one flat loop,
    so the software pipeline prefetches across taps). Output frame t's tap d reads input frame
    STRIDE t + d, which is frame t + (d - q) / STRIDE of plane q = d mod STRIDE: the output rows
    shifted by whole frames in one plane, one box; rows a box reaches outside its plane arrive as
    zeros, the convolution's padding."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    steps: tl.constexpr = (C + BLOCK_K - 1) // BLOCK_K
    for i in range(TAPS * steps):
        tap = i // steps
        c0 = (i % steps) * BLOCK_K
        shift = tap - (TAPS - 1) // 2
        plane = (shift + STRIDE * TAPS) % STRIDE
        a = y_desc.load([clip * STRIDE + plane, r0 + (shift - plane) // STRIDE * V, c0]).reshape(BLOCK_M, BLOCK_K)
        if FP8:  # (C_OUT, C) weights per tap: 8-bit tensor-core products take both operands K-major
            w = w_desc.load([(s * TAPS + tap) * C_OUT + n0, c0])
            acc = tl.dot(a, w.T, acc)
        else:
            w = w_desc.load([(s * TAPS + tap) * C + c0, n0])
            acc = tl.dot(a, w, acc)
    return acc


def _set_tma_blocks(args: dict) -> None:
    """Give the launch's tensor descriptors the candidate's tile shapes."""
    args["y_desc"].block_shape = [1, args["BLOCK_M"], args["BLOCK_K"]]
    args["w_desc"].block_shape = ([args["BLOCK_N"], args["BLOCK_K"]] if args.get("FP8")
                                  else [args["BLOCK_K"], args["BLOCK_N"]])


@autotune(_TEMPORAL_TMA_SIZES, ["ROWS_CLASS", "C", "C_OUT", "C_RES", "STRIDE", "RESIDUAL", "POOL_ROWS", "FP8"],
           pre_hook=_set_tma_blocks)
@triton.jit(do_not_specialize=["samples", "ROWS_CLASS"])
def _temporal_conv_tma_kernel(y_desc, w_desc, bias_ptr, res_ptr, res_w_ptr, out_ptr, clip_rows, samples, T_IN, V,
                              ROWS_CLASS, C: tl.constexpr, C_OUT: tl.constexpr, C_RES: tl.constexpr,
                              TAPS: tl.constexpr, STRIDE: tl.constexpr, RESIDUAL: tl.constexpr,
                              POOL_ROWS: tl.constexpr,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                              scale_ptr=None, FP8: tl.constexpr = False):
    """The temporal convolution with both operands loaded by the tensor memory accelerator
    (Hopper's TMA). ``y_desc`` is (streams x samples x STRIDE planes, frames per plane x joints, C):
    each clip's frames split by their index mod STRIDE (:func:`graph_conv`'s ``planes``), so that
    each tap's rows are one box (:func:`_tma_taps_product`). A program covers rows of one clip
    only. POOL_ROWS > 0: ``out_ptr`` gets the tile's row-group sums (:func:`_store_row_sums`)
    instead of its rows. FP8: ``y_desc`` and ``w_desc`` hold e4m3 values, the weights (S x TAPS x
    C_OUT, C), and ``scale_ptr`` (S, C_OUT) fp32 scales the sums back (:func:`temporal_conv`)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    clip = tl.program_id(2)  # stream * samples + sample
    s = clip // samples
    r0 = pid_m * BLOCK_M
    clip_row = r0 + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    sample = clip % samples
    offs_m = sample * clip_rows + clip_row  # the row in the stream
    mask_m, mask_n = clip_row < clip_rows, offs_n < C_OUT
    identity = _identity_residual(res_ptr, s, offs_m, mask_m, offs_n, mask_n, samples * clip_rows, C_OUT) \
        if RESIDUAL == 1 else 0.0
    acc = _tma_taps_product(y_desc, w_desc, clip, s, r0, pid_n * BLOCK_N, V, C, TAPS, STRIDE, BLOCK_M, BLOCK_N, BLOCK_K,
                            FP8, C_OUT)
    if FP8:
        acc = acc * tl.load(scale_ptr + s * C_OUT + offs_n, mask=mask_n, other=0.0)[None, :]
    res_rows = (sample * T_IN + clip_row // V * STRIDE) * V + clip_row % V  # the block input's row (frame STRIDE t)
    y = _temporal_result(acc, identity, bias_ptr, res_ptr, res_w_ptr, s, mask_m, offs_n, mask_n, res_rows,
                         samples * T_IN * V, C_OUT, C_RES, RESIDUAL, BLOCK_K)
    if POOL_ROWS > 0:
        _store_row_sums(y, out_ptr, clip, r0, mask_m, offs_n, mask_n, clip_rows, C_OUT, POOL_ROWS, BLOCK_M, BLOCK_N)
    else:
        _store_rows(y, out_ptr, s, offs_m, mask_m, offs_n, mask_n, samples * clip_rows, C_OUT)


def takes_tma_loads(tma: bool, channels: int, c_out: int) -> bool:
    """Whether :func:`temporal_conv` runs the tensor-memory-accelerator kernel: asked for, and fp16
    rows of whole 16-byte units (the descriptors' strides)."""
    return tma and channels % 8 == 0 and c_out % 8 == 0


def frame_planes(tma: bool, stride: int, channels: int, c_out: int) -> int:
    """The frame layout :func:`temporal_conv` reads its input in, as a count of planes: ``stride``
    where it takes the tensor-memory-accelerator kernel (a strided tap's rows are then one box of
    one plane), else 1 (the frames in order). :func:`graph_conv` writes it (``planes``)."""
    return stride if takes_tma_loads(tma, channels, c_out) else 1


def tma_available(device: torch.device) -> bool:
    """Whether the tensor-memory-accelerator kernel can run on ``device``: a Hopper or newer GPU (or
    Triton's interpreter, which emulates it) and a Triton with tensor descriptors (3.4 and later)."""
    try:
        import triton.tools.tensor_descriptor  # noqa: F401
    except ImportError:
        return False
    return INTERPRETED or (device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9)


def pack_depths(depth_per_partition: tuple[int, ...]) -> int:
    """Each partition's neighbour count (< 16), 4 bits per partition: the graph convolution's DEPTHS."""
    return sum(int(count) << (4 * k) for k, count in enumerate(depth_per_partition))


def graph_conv(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, depth_per_partition: tuple[int, ...],
               w: torch.Tensor, bias: torch.Tensor, joints: int, frames: int, planes: int = 1,
               out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x`` (S, R, C_in) -> relu(graph convolution + folded BatchNorm) (S, R', C_out).

    ``index``/``weight`` (S, K, D, V): each output joint's neighbours per partition and their
    coefficients (zero where a joint has fewer), the first ``depth_per_partition[k]`` (< 16) of
    partition k used; ``w`` (S, K, C_in, C_out); ``bias``
    (S, V, C_out) fp32: the convolution's bias carried through the joint mixing, plus the shift.
    ``planes`` > 1: each clip of ``frames`` frames is written as that many planes of ceil(frames /
    planes) frames, frame t in plane t mod planes at position t // planes, a plane's frames beyond
    the clip zero (so R' = clips x planes x ceil(frames / planes) x joints); the input of a
    strided temporal convolution with tensor-memory-accelerator loads (:func:`frame_planes`).
    ``out_dtype``: the output's dtype (default ``x``'s; float8_e4m3fn for a temporal convolution
    on fp8 operands, the values then saturating at 448).
    """
    streams, rows, c_in = x.shape
    _, partitions, depth, _ = index.shape
    c_out = w.shape[-1]
    out_rows = rows // frames * planes * triton.cdiv(frames, planes)
    out = torch.empty((streams, out_rows, c_out), dtype=out_dtype or x.dtype, device=x.device)

    def grid(meta: dict) -> tuple[int, int, int]:
        return triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(c_out, meta["BLOCK_N"]), streams

    _graph_conv_kernel[grid](x, index, weight, w, bias, out, rows, out_rows, frames, joints, size_class(rows),
                             C_IN=c_in, C_OUT=c_out, K=partitions, D=depth, DEPTHS=pack_depths(depth_per_partition),
                             PLANES=planes, **_COMPILE_OPTIONS)
    return out


def temporal_conv(y: torch.Tensor, w: torch.Tensor, bias: torch.Tensor, frames: int, joints: int, stride: int,
                  residual: torch.Tensor | None = None, residual_w: torch.Tensor | None = None,
                  tma: bool = False, pool: bool = False, scale: torch.Tensor | None = None,
                  out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``y`` (S, R, C) -> relu(temporal conv + folded BatchNorm + residual) (S, N*T'*V, C_out).

    ``y`` holds N clips of ``frames`` frames in the layout :func:`frame_planes` names (R = N*T*V
    for the frames in order). ``w`` (S, taps, C, C_out); ``bias`` (S, C_out) fp32, including the
    residual convolution's. ``residual`` None (no residual), the block input (S, N*T'*V, C_out) for
    an identity residual, or the block input (S, N*T*V, C_res) with ``residual_w`` (S, C_res, C_out)
    for a convolution. ``tma``: load through the tensor memory accelerator where
    :func:`takes_tma_loads` allows (check :func:`tma_available` first). ``pool`` (with those loads
    only): instead of the rows, each clip's column sums of every :data:`POOL_ROWS` rows, (S, N x
    ceil(T'V / POOL_ROWS), C_out) fp32, for :func:`classify_row_sums`; the rows are never stored.
    ``scale`` (S, C_out) fp32, with those loads only: ``y`` and ``w`` are float8_e4m3fn, ``w`` as
    (S, taps, C_out, C) (K-major, as 8-bit tensor-core products take it), and the convolution is
    their fp32 sum times ``scale``. ``out_dtype``: the rows' dtype (default ``y``'s).
    """
    streams, in_rows, channels = y.shape
    taps, c_out = w.shape[1], w.shape[-2] if scale is not None else w.shape[-1]
    tma_kernel = takes_tma_loads(tma, channels, c_out)
    if pool and not tma_kernel:
        raise ValueError("temporal_conv pools in its epilogue only with tensor-memory-accelerator loads")
    if scale is not None and not tma_kernel:
        raise ValueError("temporal_conv takes fp8 operands (scale) only with tensor-memory-accelerator loads")
    out_dtype = out_dtype or y.dtype
    planes = frame_planes(tma, stride, channels, c_out)
    t_out = (frames - 1) // stride + 1
    samples = in_rows // (planes * triton.cdiv(frames, planes) * joints)
    rows = samples * t_out * joints
    kind = RESIDUAL_CODES["none" if residual is None else "identity" if residual_w is None else "conv"]
    c_res = residual.shape[-1] if residual is not None else 0
    res = residual if residual is not None else y
    res_w = residual_w if residual_w is not None else w
    if tma_kernel:
        from triton.tools.tensor_descriptor import TensorDescriptor

        # one plane of a clip per descriptor row block; block shapes are placeholders: each
        # candidate sets its own (_set_tma_blocks)
        y_desc = TensorDescriptor.from_tensor(y.view(streams * samples * planes, -1, channels), [1, 64, 64])
        w_desc = TensorDescriptor.from_tensor(w.view(streams * taps * w.shape[-2], w.shape[-1]), [64, 64])
        clip_rows = t_out * joints
        out = (torch.empty((streams, samples * triton.cdiv(clip_rows, POOL_ROWS), c_out), dtype=torch.float32,
                           device=y.device) if pool
               else torch.empty((streams, rows, c_out), dtype=out_dtype, device=y.device))

        def clip_grid(meta: dict) -> tuple[int, int, int]:
            return triton.cdiv(clip_rows, meta["BLOCK_M"]), triton.cdiv(c_out, meta["BLOCK_N"]), streams * samples

        _temporal_conv_tma_kernel[clip_grid](y_desc, w_desc, bias, res, res_w, out, clip_rows, samples, frames, joints,
                                             size_class(rows), C=channels, C_OUT=c_out, C_RES=c_res, TAPS=taps,
                                             STRIDE=stride, RESIDUAL=kind,
                                             POOL_ROWS=POOL_ROWS if pool else 0, scale_ptr=scale, FP8=scale is not None,
                                             **_COMPILE_OPTIONS)
        return out

    def grid(meta: dict) -> tuple[int, int, int]:
        return triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(c_out, meta["BLOCK_N"]), streams

    out = torch.empty((streams, rows, c_out), dtype=out_dtype, device=y.device)
    _temporal_conv_kernel[grid](y, w, bias, res, res_w, out, rows, in_rows, t_out, frames, joints, size_class(rows),
                                C=channels, C_OUT=c_out, C_RES=c_res, TAPS=taps, STRIDE=stride, RESIDUAL=kind,
                                **_COMPILE_OPTIONS)
    return out


#: the temporal convolution's RESIDUAL constant for a block's :func:`~stgcn_rt.model.network.residual_kind`
RESIDUAL_CODES = {"none": 0, "identity": 1, "conv": 2}

#: motion stream of :func:`~stgcn_rt.model.network.motion_of`, by kernel code (0: one stream, no motion)
MOTION_CODES = {None: 0, "forward": 1, "central": 2}


@triton.jit
def _prepare_kernel(x_ptr, scale_ptr, shift_ptr, out_ptr, rows, T, V, M,
                    C: tl.constexpr, MOTION: tl.constexpr, BLOCK: tl.constexpr, C_PAD: tl.constexpr):
    """Stream 0 reads x, stream 1 its temporal differences (MOTION 1: x[t] - x[t-1]; 2: x[t] -
    0.5 x[t+1] - 0.5 x[t-1]; zero where a neighbour frame is missing), in the reference's order of
    operations; then the per (joint, channel) affine of the input BatchNorm."""
    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    s = tl.program_id(1)
    c = tl.arange(0, C_PAD)
    v = r % V
    t = (r // V) % T
    sample = r // (V * T)  # n * M + m
    mask = (r < rows)[:, None] & (c < C)[None, :]
    step = V * M  # from one frame to the next in x
    at = x_ptr + ((sample // M)[:, None] * C + c[None, :]).to(tl.int64) * T * step \
        + (t * step + v * M + sample % M)[:, None]
    val = tl.load(at, mask=mask, other=0.0)
    motion = (r * 0 + s)[:, None] + c[None, :] * 0 == 1  # tile-shaped: the interpreter rejects a broadcast scalar
    if MOTION == 1:
        has = (t > 0)[:, None]
        before = tl.load(at - step, mask=mask & has, other=0.0)
        val = tl.where(motion, tl.where(has, val - before, 0.0), val)
    if MOTION == 2:
        has = ((t > 0) & (t < T - 1))[:, None]
        before = tl.load(at - step, mask=mask & has, other=0.0)
        after = tl.load(at + step, mask=mask & has, other=0.0)
        val = tl.where(motion, tl.where(has, val - 0.5 * after - 0.5 * before, 0.0), val)
    affine = (s * V + v)[:, None] * C + c[None, :]
    y = val * tl.load(scale_ptr + affine, mask=mask, other=0.0) + tl.load(shift_ptr + affine, mask=mask, other=0.0)
    tl.store(out_ptr + s.to(tl.int64) * rows * C + r.to(tl.int64)[:, None] * C + c[None, :],
             y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _pool_kernel(y_ptr, out_ptr, per_window, windows, C: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Mean over one window's rows (persons x frames x joints) of a column block, fp32."""
    n = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    s = tl.program_id(2)
    base = y_ptr + (s.to(tl.int64) * windows + n) * per_window * C
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    for r0 in range(0, per_window, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        acc += tl.load(base + r[:, None] * C + cols[None, :], mask=(r < per_window)[:, None] & (cols < C)[None, :],
                       other=0.0).to(tl.float32)
    tl.store(out_ptr + (s * windows + n) * C + cols, tl.sum(acc, axis=0) / per_window, mask=cols < C)


@triton.jit
def _block_logits(pooled_ptr, w_ptr, b_ptr, n, k, windows, S: tl.constexpr, C: tl.constexpr, CLASSES: tl.constexpr,
                  BLOCK_C: tl.constexpr, BLOCK_CLASSES: tl.constexpr):
    """Window n's logits of the classes ``k``: the sum over streams of pooled @ W + b, channels in steps."""
    logits = tl.zeros((BLOCK_CLASSES,), dtype=tl.float32)
    for s in tl.static_range(S):
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            pooled = tl.load(pooled_ptr + (s * windows + n) * C + c, mask=c < C, other=0.0, cache_modifier=".cg")
            w = tl.load(w_ptr + (s * C + c)[:, None] * CLASSES + k[None, :],
                        mask=(c < C)[:, None] & (k < CLASSES)[None, :], other=0.0)
            logits += tl.sum(pooled[:, None] * w, axis=0)
        logits += tl.load(b_ptr + s * CLASSES + k, mask=k < CLASSES, other=0.0)
    return logits


@triton.jit
def _pool_row_sums(sums_ptr, pooled_ptr, n, windows, groups, per_window, S: tl.constexpr, C: tl.constexpr,
                   BLOCK_C: tl.constexpr, BLOCK_GROUPS: tl.constexpr):
    """Window n's mean per stream and channel from its ``groups`` row-group sums (each stream's
    (S, windows x groups, C) sums of :func:`_store_row_sums`), into ``pooled_ptr`` (S, windows, C)."""
    for s in tl.static_range(S):
        base = sums_ptr + (s * windows + n).to(tl.int64) * groups * C
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            acc = tl.zeros((BLOCK_GROUPS, BLOCK_C), dtype=tl.float32)
            for g0 in range(0, groups, BLOCK_GROUPS):
                g = g0 + tl.arange(0, BLOCK_GROUPS)
                acc += tl.load(base + g[:, None] * C + c[None, :], mask=(g < groups)[:, None] & (c < C)[None, :],
                               other=0.0)
            tl.store(pooled_ptr + (s * windows + n) * C + c, tl.sum(acc, axis=0) / per_window, mask=c < C)


@triton.jit
def _classify_kernel(pooled_ptr, sums_ptr, w_ptr, b_ptr, out_ptr, windows, groups, per_window, S: tl.constexpr,
                     C: tl.constexpr, CLASSES: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_CLASSES: tl.constexpr,
                     BLOCK_GROUPS: tl.constexpr):
    """One window's logits into out[n, 0] and their softmax into out[n, 1], in blocks of classes.

    BLOCK_GROUPS > 0: the window's means come from row-group sums (:func:`_pool_row_sums`), pooled
    here first; else ``pooled_ptr`` holds them. The first pass writes the logits and keeps a running
    maximum and sum of exponentials; the second recomputes each block's logits rather than reading
    them back (``out`` may be host memory)."""
    n = tl.program_id(0)
    if BLOCK_GROUPS > 0:
        _pool_row_sums(sums_ptr, pooled_ptr, n, windows, groups, per_window, S, C, BLOCK_C, BLOCK_GROUPS)
        tl.debug_barrier()  # the means written by every thread of the program, before any reads them
    row = out_ptr + n * 2 * CLASSES
    peak = tl.full((), float("-inf"), tl.float32)
    total = tl.zeros((), dtype=tl.float32)
    for k0 in range(0, CLASSES, BLOCK_CLASSES):
        k = k0 + tl.arange(0, BLOCK_CLASSES)
        logits = _block_logits(pooled_ptr, w_ptr, b_ptr, n, k, windows, S, C, CLASSES, BLOCK_C, BLOCK_CLASSES)
        tl.store(row + k, logits, mask=k < CLASSES)
        new_peak = tl.maximum(peak, tl.max(tl.where(k < CLASSES, logits, float("-inf")), axis=0))
        total = total * tl.exp(peak - new_peak) + tl.sum(tl.where(k < CLASSES, tl.exp(logits - new_peak), 0.0), axis=0)
        peak = new_peak
    for k0 in range(0, CLASSES, BLOCK_CLASSES):
        k = k0 + tl.arange(0, BLOCK_CLASSES)
        logits = _block_logits(pooled_ptr, w_ptr, b_ptr, n, k, windows, S, C, CLASSES, BLOCK_C, BLOCK_CLASSES)
        tl.store(row + CLASSES + k, tl.exp(logits - peak) / total, mask=k < CLASSES)


def prepare_input(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, motion: str | None,
                  dtype: torch.dtype) -> torch.Tensor:
    """``x`` (N, C, T, V, M) fp32 -> (S, N*M*T*V, C) in ``dtype`` on ``scale``'s device: S = 2 with a
    ``motion`` stream (``forward`` or ``central``), else 1; ``scale``/``shift`` (S, V, C) the input
    BatchNorm. ``x`` may be pinned host memory, which the kernel reads in place (no copy)."""
    if x.device != scale.device and not (x.dtype == torch.float32 and x.is_contiguous() and x.is_pinned()):
        raise ValueError("windows on the host must be a pinned, contiguous float32 tensor for the kernels to read")
    x = x.float().contiguous()
    n, c, t, v, m = x.shape
    streams, rows = scale.shape[0], n * m * t * v
    out = torch.empty((streams, rows, c), dtype=dtype, device=scale.device)
    block = 128
    _prepare_kernel[(triton.cdiv(rows, block), streams)](x, scale, shift, out, rows, t, v, m, C=c,
                                                          MOTION=MOTION_CODES[motion], BLOCK=block,
                                                          C_PAD=triton.next_power_of_2(c), **_COMPILE_OPTIONS)
    return out


def pool_and_classify(y: torch.Tensor, windows: int, w: torch.Tensor, b: torch.Tensor,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """``y`` (S, windows * rows per window, C) -> (windows, 2, classes) fp32: [:, 0] the logits (per
    stream the mean over a window's rows times ``w`` (S, C, classes) plus ``b`` (S, classes), summed
    over the streams), [:, 1] their softmax. Written into ``out`` if given (GPU or pinned host memory)."""
    streams, rows, c = y.shape
    pooled = torch.empty((streams, windows, c), dtype=torch.float32, device=y.device)
    # narrow column blocks, tall row blocks: a batch of 1 still spreads over 64 programs, and each
    # sums a window of one person in a single step (the kernel is latency-bound there)
    per_window, block_c = rows // windows, 8
    _pool_kernel[(windows, triton.cdiv(c, block_c), streams)](
        y, pooled, per_window, windows, C=c, BLOCK_R=min(2048, triton.next_power_of_2(per_window)), BLOCK_C=block_c,
        num_warps=8, **_COMPILE_OPTIONS)
    return _classify(pooled, None, 0, 1, w, b, out)


def classify_row_sums(sums: torch.Tensor, windows: int, per_window: int, w: torch.Tensor, b: torch.Tensor,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`pool_and_classify` from ``sums`` (S, windows x groups, C), the row-group sums of
    ``temporal_conv(pool=True)``, for windows of ``per_window`` rows: one kernel, whose program per
    window pools its sums before it classifies."""
    streams, rows, c = sums.shape
    pooled = torch.empty((streams, windows, c), dtype=torch.float32, device=sums.device)
    return _classify(pooled, sums, rows // windows, per_window, w, b, out)


def _classify(pooled: torch.Tensor, sums: torch.Tensor | None, groups: int, per_window: int, w: torch.Tensor,
              b: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """The classifier kernel over ``pooled`` (S, windows, C) means, or over row-group ``sums`` it pools first."""
    streams, windows, c = pooled.shape
    classes = w.shape[-1]
    if out is None:
        out = torch.empty((windows, 2, classes), dtype=torch.float32, device=pooled.device)
    # a (channels x classes) weight tile of at most 4,096 values per step: a two-class head takes all
    # channels at once, a Kinetics-size head steps through them in blocks of 64 classes; the same
    # bound for the (groups x channels) tiles of the sums
    block_classes = min(64, triton.next_power_of_2(classes))
    block_c = min(triton.next_power_of_2(c), 4096 // block_classes)
    block_groups = 0 if sums is None else min(triton.next_power_of_2(groups), max(1, 4096 // block_c))
    _classify_kernel[(windows,)](pooled, pooled if sums is None else sums, w, b, out, windows, groups, per_window,
                                 S=streams, C=c, CLASSES=classes, BLOCK_C=block_c, BLOCK_CLASSES=block_classes,
                                 BLOCK_GROUPS=block_groups, **_COMPILE_OPTIONS)
    return out
