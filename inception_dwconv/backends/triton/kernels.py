"""Triton kernels of the fused Inception depthwise convolution.

Imported lazily (by ``launch``), after TRITON_INTERPRET has been decided: ``triton.jit`` picks the
interpreter at decoration time.

Work decomposition, shared by forward and backward
--------------------------------------------------
A program owns one image ``n``, one *channel block* and one *spatial group*. Channel blocks never
straddle a branch boundary: program_id(1) enumerates ``NB_ID`` identity blocks, then ``NB_G``
blocks of each conv branch (square, band_w, band_h), each ``BLOCK_C`` channels wide (the last
block of a branch is masked). The branch is therefore uniform inside a program and selected with a
scalar ``if``. A spatial group is one column of ``BLOCK_W`` pixels by ``ROWS_PER_PROG`` tiles of
``BLOCK_H`` rows; the program loops over those row tiles. A tile is held as a 2-D block
``[BLOCK_C, BLOCK_H * BLOCK_W]`` (spatial positions flattened), so one kernel serves NCHW
(contiguous along the spatial axis) and channels_last (contiguous along the channel axis); every
tensor is addressed through explicit strides, so strided views are read in place. Conv taps are
statically unrolled; halo loads are masked (zero padding) and served from L1/L2 on a GPU.

Every load is upcast to ``ACC`` (fp32, or fp64 for fp64 tensors) before any arithmetic: the
interpreter holds bf16 as uint16. Under autocast (``ROUND``) the kernels read and write fp32
tensors but round what they read (x or grad_out, weights, biases) and the conv results to bf16 or
fp16 precision (``_rounded``), which gives, in one pass, what casting to that dtype, running the
low-precision op and casting back gives. The interpreter's own fp32 -> bf16 cast truncates, so
there (``SOFT``) bf16 rounding is done on the bits, nearest-even as on a GPU and in torch.

Backward: one pass computes grad_x (identity channels copied, conv channels = correlation of
grad_out with the flipped kernel) and, per program, fp32 weight/bias partial sums accumulated in
registers over the program's row tiles and written once to row ``group`` of a workspace, laid out
as the flat concatenation of the six grads (w_hw, b_hw, w_w, b_w, w_h, b_h; the same layout as
wgrad_kernel's). The launcher reduces it with a deterministic ``.sum(0)``: no atomics.
"""
import triton
import triton.language as tl


@triton.jit
def _rounded(v, ROUND: tl.constexpr, SOFT: tl.constexpr):
    """fp32 v rounded to bf16 (ROUND == 1) or fp16 (ROUND == 2) precision and kept in fp32, as
    ``v.to(low).float()`` in torch (ROUND == 0: v). The one-pass autocast kernels read and write
    fp32 tensors through it. SOFT (the interpreter, whose bf16 cast truncates): bf16 rounding done
    on the bits, nearest-even as torch's cast, NaN kept NaN."""
    if ROUND == 1:
        if SOFT:
            u = v.to(tl.uint32, bitcast=True)
            u = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) << 16
            v = tl.where(v != v, v, u.to(tl.float32, bitcast=True))
        else:
            v = v.to(tl.bfloat16).to(tl.float32)
    elif ROUND == 2:
        v = v.to(tl.float16).to(tl.float32)
    return v


@triton.jit
def _narrowed(acc, OUT_TY: tl.constexpr, ROUND: tl.constexpr, SOFT: tl.constexpr):
    """acc stored as OUT_TY: rounded first under autocast (ROUND), and a bf16 OUT_TY rounded to
    nearest-even on the bits under the interpreter (SOFT), whose own bf16 cast truncates."""
    if ROUND != 0:
        acc = _rounded(acc, ROUND, SOFT)
    elif SOFT:
        if OUT_TY == tl.bfloat16:
            acc = _rounded(acc, 1, SOFT)
    return acc.to(OUT_TY)


@triton.jit
def _tile_coords(rt, tw, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, INT64: tl.constexpr):
    p = tl.arange(0, BLOCK_H * BLOCK_W)
    h = rt * BLOCK_H + p // BLOCK_W
    w = tw * BLOCK_W + p % BLOCK_W
    if INT64:
        h = h.to(tl.int64)
        w = w.to(tl.int64)
    return h, w


@triton.jit
def _program_coords(C_ID, GC, NB_ID, NB_G, n_groups, n_groups_w, BLOCK_C: tl.constexpr,
                    INT64: tl.constexpr):
    """(n, spatial group row, spatial group column, branch, channel vector, channel mask, index of
    the first channel inside its branch)."""
    pid0 = tl.program_id(0)
    pid1 = tl.program_id(1)
    n = pid0 // n_groups
    g = pid0 % n_groups
    gh = g // n_groups_w
    gw = g % n_groups_w
    is_id = pid1 < NB_ID
    r = tl.maximum(pid1 - NB_ID, 0)
    branch = tl.where(is_id, 0, 1 + r // NB_G)
    blk = tl.where(is_id, pid1, r % NB_G)
    c_lo = tl.where(is_id, 0, C_ID + (branch - 1) * GC)
    c_hi = tl.where(is_id, C_ID, c_lo + GC)
    cw0 = blk * BLOCK_C
    c = c_lo + cw0 + tl.arange(0, BLOCK_C)
    cmask = c < c_hi
    if INT64:
        n = n.to(tl.int64)
        c = c.to(tl.int64)
    return n, gh, gw, branch, c, cmask, cw0


@triton.jit
def _conv_tile(src_nc, h, w, cmask, H, W, s_h, s_w, w_ptr, cw, DIL,
               KH: tl.constexpr, KW: tl.constexpr, FLIP: tl.constexpr, ACC: tl.constexpr,
               BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr, ROUND: tl.constexpr, SOFT: tl.constexpr):
    """sum over taps (i, j) of src[h + dy_i, w + dx_j] * weight[cw, i, j] (FLIP: correlation with
    the flipped kernel, i.e. the input gradient). src_nc: [BLOCK_C, 1] pointers to the planes.
    Values and weights are read at the autocast precision (_rounded) when ROUND."""
    acc = tl.zeros([BLOCK_C, BLOCK_P], ACC)
    for i in tl.static_range(KH):
        dy = (i - (KH - 1) // 2) * DIL
        if FLIP:  # the flipped kernel: tap i sits at the mirrored offset
            dy = -dy
        hh = h + dy
        hmask = (hh >= 0) & (hh < H)
        for j in tl.static_range(KW):
            dx = (j - (KW - 1) // 2) * DIL
            if FLIP:
                dx = -dx
            ww = w + dx
            m = cmask[:, None] & (hmask & (ww >= 0) & (ww < W))[None, :]
            v = _rounded(tl.load(src_nc + (hh * s_h + ww * s_w)[None, :], mask=m, other=0.0).to(ACC), ROUND, SOFT)
            wt = _rounded(tl.load(w_ptr + cw * (KH * KW) + (i * KW + j), mask=cmask, other=0.0).to(ACC), ROUND, SOFT)
            acc += v * wt[:, None]
    return acc


@triton.jit
def _forward_branch(x_ptr, y_ptr, n, c, cmask, cw, gh, gw, H, W, n_row_tiles,
                    sxn, sxc, sxh, sxw, syn, syc, syh, syw, w_ptr, b_ptr, DIL,
                    KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
                    IS_CONV: tl.constexpr, FLIP: tl.constexpr, ACC: tl.constexpr,
                    ROWS_PER_PROG: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr,
                    BLOCK_W: tl.constexpr, INT64: tl.constexpr, ROUND: tl.constexpr, SOFT: tl.constexpr):
    x_nc = x_ptr + n * sxn + c[:, None] * sxc
    y_nc = y_ptr + n * syn + c[:, None] * syc
    if IS_CONV:
        if HAS_BIAS:
            bias = _rounded(tl.load(b_ptr + cw, mask=cmask, other=0.0).to(ACC), ROUND, SOFT)
    rt0 = gh * ROWS_PER_PROG
    rt1 = tl.minimum(rt0 + ROWS_PER_PROG, n_row_tiles)
    for rt in range(rt0, rt1):
        h, w = _tile_coords(rt, gw, BLOCK_H, BLOCK_W, INT64)
        m = cmask[:, None] & ((h < H) & (w < W))[None, :]
        if IS_CONV:
            acc = _conv_tile(x_nc, h, w, cmask, H, W, sxh, sxw, w_ptr, cw, DIL,
                             KH, KW, FLIP, ACC, BLOCK_C, BLOCK_H * BLOCK_W, ROUND, SOFT)
            if HAS_BIAS:
                acc += bias[:, None]
            out = _narrowed(acc, y_ptr.dtype.element_ty, ROUND, SOFT)
        else:
            out = tl.load(x_nc + (h * sxh + w * sxw)[None, :], mask=m)
        tl.store(y_nc + (h * syh + w * syw)[None, :], out, mask=m)


@triton.jit
def forward_kernel(x_ptr, y_ptr, whw_ptr, bhw_ptr, ww_ptr, bw_ptr, wh_ptr, bh_ptr,
                   C_ID, GC, H, W, NB_ID, NB_G, n_groups, n_groups_w, n_row_tiles, DIL,
                   sxn, sxc, sxh, sxw, syn, syc, syh, syw,
                   KS: tl.constexpr, KW: tl.constexpr, KH: tl.constexpr,
                   HAS_BHW: tl.constexpr, HAS_BW: tl.constexpr, HAS_BH: tl.constexpr,
                   FLIP: tl.constexpr, ACC: tl.constexpr, ROWS_PER_PROG: tl.constexpr,
                   BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
                   INT64: tl.constexpr, ROUND: tl.constexpr, SOFT: tl.constexpr):
    """y = cat(x_id, conv_sq(x), conv_1xK(x), conv_Kx1(x)) + biases; with FLIP (and no biases),
    the same pass over grad_out gives grad_x. ROUND (autocast, fp32 x and y): the conv channels
    computed from x, weights and biases rounded to bf16 / fp16 and rounded so themselves (_rounded),
    the identity channels copied exactly; SOFT: under the interpreter."""
    n, gh, gw, branch, c, cmask, cw0 = _program_coords(C_ID, GC, NB_ID, NB_G, n_groups, n_groups_w,
                                                       BLOCK_C, INT64)
    cw = cw0 + tl.arange(0, BLOCK_C)
    if branch == 0:
        _forward_branch(x_ptr, y_ptr, n, c, cmask, cw, gh, gw, H, W, n_row_tiles,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, whw_ptr, bhw_ptr, DIL,
                        1, 1, False, False, FLIP, ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, ROUND, SOFT)
    elif branch == 1:
        _forward_branch(x_ptr, y_ptr, n, c, cmask, cw, gh, gw, H, W, n_row_tiles,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, whw_ptr, bhw_ptr, DIL,
                        KS, KS, HAS_BHW, True, FLIP, ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, ROUND, SOFT)
    elif branch == 2:
        _forward_branch(x_ptr, y_ptr, n, c, cmask, cw, gh, gw, H, W, n_row_tiles,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, ww_ptr, bw_ptr, DIL,
                        1, KW, HAS_BW, True, FLIP, ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, ROUND, SOFT)
    else:
        _forward_branch(x_ptr, y_ptr, n, c, cmask, cw, gh, gw, H, W, n_row_tiles,
                        sxn, sxc, sxh, sxw, syn, syc, syh, syw, wh_ptr, bh_ptr, DIL,
                        KH, 1, HAS_BH, True, FLIP, ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64,
                        ROUND, SOFT)


@triton.jit
def _backward_branch(g_ptr, x_ptr, gx_ptr, ws_ptr, w_ptr, n, c, cmask, cw, gh, gw, H, W,
                     n_row_tiles, pid0, GC, DIL,
                     sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, slot0,
                     L: tl.constexpr, LP: tl.constexpr,
                     KH: tl.constexpr, KW: tl.constexpr, IS_CONV: tl.constexpr,
                     COMPUTE_INPUT: tl.constexpr, COMPUTE_WEIGHT: tl.constexpr,
                     ACC: tl.constexpr, ROWS_PER_PROG: tl.constexpr, BLOCK_C: tl.constexpr,
                     BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, INT64: tl.constexpr,
                     SOFT: tl.constexpr):
    BLOCK_P: tl.constexpr = BLOCK_H * BLOCK_W
    g_nc = g_ptr + n * sgn + c[:, None] * sgc
    x_nc = x_ptr + n * sxn + c[:, None] * sxc
    d_nc = gx_ptr + n * sdn + c[:, None] * sdc
    PH: tl.constexpr = (KH - 1) // 2
    PW: tl.constexpr = (KW - 1) // 2
    cols = tl.arange(0, LP)
    # weight partials [BLOCK_C, LP]: column i*KW + j holds tap (i, j), column KH*KW the bias
    part = tl.zeros([BLOCK_C, LP], ACC)
    rt0 = gh * ROWS_PER_PROG
    rt1 = tl.minimum(rt0 + ROWS_PER_PROG, n_row_tiles)
    for rt in range(rt0, rt1):
        h, w = _tile_coords(rt, gw, BLOCK_H, BLOCK_W, INT64)
        m = cmask[:, None] & ((h < H) & (w < W))[None, :]
        if IS_CONV:
            if COMPUTE_INPUT:
                acc = _conv_tile(g_nc, h, w, cmask, H, W, sgh, sgw, w_ptr, cw, DIL,
                                 KH, KW, True, ACC, BLOCK_C, BLOCK_P, 0, SOFT)
                tl.store(d_nc + (h * sdh + w * sdw)[None, :], _narrowed(acc, gx_ptr.dtype.element_ty, 0, SOFT),
                         mask=m)
            if COMPUTE_WEIGHT:
                g = tl.load(g_nc + (h * sgh + w * sgw)[None, :], mask=m, other=0.0).to(ACC)
                part += tl.where(cols[None, :] == KH * KW, tl.sum(g, 1)[:, None], 0.0)
                for i in tl.static_range(KH):
                    hh = h + (i - PH) * DIL
                    hmask = (hh >= 0) & (hh < H)
                    for j in tl.static_range(KW):
                        ww = w + (j - PW) * DIL
                        mx = m & (hmask & (ww >= 0) & (ww < W))[None, :]
                        v = tl.load(x_nc + (hh * sxh + ww * sxw)[None, :], mask=mx,
                                    other=0.0).to(ACC)
                        part += tl.where(cols[None, :] == i * KW + j, tl.sum(g * v, 1)[:, None], 0.0)
        else:
            if COMPUTE_INPUT:
                v = tl.load(g_nc + (h * sgh + w * sgw)[None, :], mask=m)
                tl.store(d_nc + (h * sdh + w * sdw)[None, :], v.to(gx_ptr.dtype.element_ty),
                         mask=m)
    if IS_CONV:
        if COMPUTE_WEIGHT:
            # taps of channel cw at slot0 + cw * taps + tap, its bias at slot0 + GC * taps + cw
            TAPS: tl.constexpr = KH * KW
            slot = tl.where(cols[None, :] < TAPS, cw[:, None] * TAPS + cols[None, :], GC * TAPS + cw[:, None])
            ws = ws_ptr + pid0.to(tl.int64) * (GC * L) + slot0 + slot
            tl.store(ws, part, mask=cmask[:, None] & (cols[None, :] <= TAPS))


@triton.jit
def backward_kernel(g_ptr, x_ptr, gx_ptr, ws_ptr, whw_ptr, ww_ptr, wh_ptr,
                    C_ID, GC, H, W, NB_ID, NB_G, n_groups, n_groups_w, n_row_tiles, DIL,
                    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw,
                    KS: tl.constexpr, KW: tl.constexpr, KH: tl.constexpr, LP: tl.constexpr,
                    COMPUTE_INPUT: tl.constexpr, COMPUTE_WEIGHT: tl.constexpr,
                    ACC: tl.constexpr, ROWS_PER_PROG: tl.constexpr, BLOCK_C: tl.constexpr,
                    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, INT64: tl.constexpr,
                    SOFT: tl.constexpr):
    n, gh, gw, branch, c, cmask, cw0 = _program_coords(C_ID, GC, NB_ID, NB_G, n_groups, n_groups_w,
                                                       BLOCK_C, INT64)
    cw = cw0 + tl.arange(0, BLOCK_C)
    pid0 = tl.program_id(0)
    L: tl.constexpr = KS * KS + KW + KH + 3
    if branch == 0:
        _backward_branch(g_ptr, x_ptr, gx_ptr, ws_ptr, whw_ptr, n, c, cmask, cw, gh, gw, H, W,
                         n_row_tiles, pid0, GC, DIL,
                         sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, 0,
                         L, LP, 1, 1, False, COMPUTE_INPUT, COMPUTE_WEIGHT,
                         ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, SOFT)
    elif branch == 1:
        _backward_branch(g_ptr, x_ptr, gx_ptr, ws_ptr, whw_ptr, n, c, cmask, cw, gh, gw, H, W,
                         n_row_tiles, pid0, GC, DIL,
                         sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, 0,
                         L, LP, KS, KS, True, COMPUTE_INPUT, COMPUTE_WEIGHT,
                         ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, SOFT)
    elif branch == 2:
        _backward_branch(g_ptr, x_ptr, gx_ptr, ws_ptr, ww_ptr, n, c, cmask, cw, gh, gw, H, W,
                         n_row_tiles, pid0, GC, DIL,
                         sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw, GC * (KS * KS + 1),
                         L, LP, 1, KW, True, COMPUTE_INPUT, COMPUTE_WEIGHT,
                         ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, SOFT)
    else:
        _backward_branch(g_ptr, x_ptr, gx_ptr, ws_ptr, wh_ptr, n, c, cmask, cw, gh, gw, H, W,
                         n_row_tiles, pid0, GC, DIL,
                         sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw, sdn, sdc, sdh, sdw,
                         GC * (KS * KS + KW + 2), L, LP, KH, 1, True, COMPUTE_INPUT, COMPUTE_WEIGHT,
                         ACC, ROWS_PER_PROG, BLOCK_C, BLOCK_H, BLOCK_W, INT64, SOFT)


@triton.jit
def _wgrad_branch(g_ptr, x_ptr, row_ptr, slot0, n0, n1, t0, t1, c, cw, cmask, H, W, n_tiles_w,
                  GC, DIL, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                  KH: tl.constexpr, KW: tl.constexpr, LP: tl.constexpr, ACC: tl.constexpr,
                  BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
                  INT64: tl.constexpr, ROUND: tl.constexpr, SOFT: tl.constexpr):
    """Weight and bias grads of one branch's channel block over images [n0, n1) and spatial tiles
    [t0, t1) (row-major over the map, n_tiles_w per row of tiles): every tap at once
    as a [LP, BLOCK_C, BLOCK_P] block (taps gathered by offset), summed over space only once, at
    the end - no cross-thread reduction inside the loops."""
    TAPS: tl.constexpr = KH * KW
    BLOCK_P: tl.constexpr = BLOCK_H * BLOCK_W
    k = tl.arange(0, LP)
    kmask = k < TAPS
    dy = (k // KW - (KH - 1) // 2) * DIL
    dx = (k % KW - (KW - 1) // 2) * DIL
    acc = tl.zeros([LP, BLOCK_C, BLOCK_P], ACC)
    accb = tl.zeros([BLOCK_C, BLOCK_P], ACC)
    g_c = g_ptr + c[:, None] * sgc
    x_c = x_ptr + c[None, :, None] * sxc
    for n in range(n0, n1):  # 64-bit when n0 is (INT64)
        for t in range(t0, t1):
            h, w = _tile_coords(t // n_tiles_w, t % n_tiles_w, BLOCK_H, BLOCK_W, INT64)
            pm = (h < H) & (w < W)
            gv = tl.load(g_c + n * sgn + (h * sgh + w * sgw)[None, :], mask=cmask[:, None] & pm[None, :],
                         other=0.0).to(ACC)
            gv = _rounded(gv, ROUND, SOFT)
            hh = h[None, :] + dy[:, None]
            ww = w[None, :] + dx[:, None]
            inb = kmask[:, None] & pm[None, :] & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            xv = tl.load(x_c + n * sxn + (hh * sxh + ww * sxw)[:, None, :],
                         mask=cmask[None, :, None] & inb[:, None, :], other=0.0).to(ACC)
            xv = _rounded(xv, ROUND, SOFT)
            acc += xv * gv[None, :, :]
            accb += gv
    part = tl.sum(acc, 2)
    tl.store(row_ptr + slot0 + cw[None, :] * TAPS + k[:, None], part, mask=kmask[:, None] & cmask[None, :])
    tl.store(row_ptr + slot0 + GC * TAPS + cw, tl.sum(accb, 1), mask=cmask)


@triton.jit
def wgrad_kernel(g_ptr, x_ptr, ws_ptr, C_ID, GC, H, W, N, NB_G, IMGS, N_CHUNKS, TILES, n_tiles_w,
                 n_tiles, DIL,
                 sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                 KS: tl.constexpr, KW: tl.constexpr, KH: tl.constexpr, LP_S: tl.constexpr,
                 LP_W: tl.constexpr, LP_H: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr,
                 BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, INT64: tl.constexpr,
                 ROUND: tl.constexpr, SOFT: tl.constexpr):
    """Weight/bias grads of the split backward (ROUND: grad_out and x read at the autocast
    precision, _rounded). program_id(0): a group of IMGS images and a chunk
    of TILES spatial tiles (N_CHUNKS chunks per image group); program_id(1): a channel block of a
    conv branch (square, band_w, band_h). Each program writes its partial sums to row
    program_id(0) of ws, laid out as the flat concatenation
    [w_hw (gc*KS*KS), b_hw (gc), w_w (gc*KW), b_w (gc), w_h (gc*KH), b_h (gc)]; the launcher sums
    the rows in a fixed order."""
    pid0 = tl.program_id(0)
    pid1 = tl.program_id(1)
    branch = pid1 // NB_G
    cw = (pid1 % NB_G) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cw < GC
    c = C_ID + branch * GC + cw
    if INT64:
        c = c.to(tl.int64)
    n0 = (pid0 // N_CHUNKS) * IMGS
    n1 = tl.minimum(n0 + IMGS, N)
    if INT64:
        n0 = n0.to(tl.int64)
        n1 = n1.to(tl.int64)
    t0 = (pid0 % N_CHUNKS) * TILES
    t1 = tl.minimum(t0 + TILES, n_tiles)
    row = ws_ptr + pid0.to(tl.int64) * (GC * (KS * KS + KW + KH + 3))
    if branch == 0:
        _wgrad_branch(g_ptr, x_ptr, row, 0, n0, n1, t0, t1, c, cw, cmask, H, W, n_tiles_w,
                      GC, DIL, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                      KS, KS, LP_S, ACC, BLOCK_C, BLOCK_H, BLOCK_W, INT64, ROUND, SOFT)
    elif branch == 1:
        _wgrad_branch(g_ptr, x_ptr, row, GC * (KS * KS + 1), n0, n1, t0, t1, c, cw, cmask, H, W,
                      n_tiles_w, GC, DIL, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                      1, KW, LP_W, ACC, BLOCK_C, BLOCK_H, BLOCK_W, INT64, ROUND, SOFT)
    else:
        _wgrad_branch(g_ptr, x_ptr, row, GC * (KS * KS + KW + 2), n0, n1, t0, t1, c, cw, cmask, H,
                      W, n_tiles_w, GC, DIL, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                      KH, 1, LP_H, ACC, BLOCK_C, BLOCK_H, BLOCK_W, INT64, ROUND, SOFT)
