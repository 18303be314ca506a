"""Tile-plan sweep of the Triton kernels on a GPU: for each InceptionNeXt-T stage, dtype, layout and
direction (fwd: forward, whose plan the default split backward's grad_x pass uses too; wgrad: the
split backward's weight-grad kernel; bwd: the fused backward, grad_x and weight grads), time a
set of candidate plans against the plan the launcher picks today: (BLOCK_C, BLOCK_H, BLOCK_W,
ROWS_PER_PROG, num_warps) for fwd / bwd, (BLOCK_C, BLOCK_H, BLOCK_W, IMGS, TILES_PER_PROG,
num_warps) for wgrad.

    python scripts/triton_sweep.py [--batch 128] [--dtypes fp32[,bf16]] [--directions fwd,wgrad[,bwd]]
                                   [--jobs 14] [--out FILE]

Phase 1 compiles every candidate in parallel worker processes (Triton's on-disk cache is shared),
each also checking its plan's results against the fp64 eager reference on a batch of 2; phase 2
times the correct ones in this process with triton.testing.do_bench (kernel launch only, no
autograd; median). Prints, per case, the current plan's time and the best plan found.
"""
import argparse
import itertools
import multiprocessing as mp
import sys

from _tee import Tee

STAGES = ((96, 56), (192, 28), (384, 14), (768, 7))


def pow2(v):
    p = 1
    while p < v:
        p *= 2
    return p


def candidates(C, H, gc, channels_last, backward):
    """A small, varied set of plans around the heuristic: tile sizes 512-4096 (more elements per
    thread than the heuristic's 4 keep more loads in flight), 4 or 8 warps."""
    c_id = C - 3 * gc
    plans = set()
    for elems in (512, 1024, 2048, 4096):
        if channels_last:
            for bc in (16, 32, 64):
                if bc > pow2(max(gc, c_id)):
                    continue
                p = max(1, elems // bc)
                bw = min(pow2(H), 16, p)
                bh = max(1, min(pow2(H), p // bw))
                tiles = [(bc, bh, bw)]
        else:
            tiles = []
            for bw in (16, 32, 64):
                if bw > max(16, pow2(H)):
                    continue
                bh = max(1, min(pow2(H), elems // bw))
                bc = max(1, min(pow2(gc), elems // (bh * bw)))
                tiles.append((bc, bh, bw))
        for bc, bh, bw in tiles:
            n_row_tiles = -(-H // bh)
            for warps in (4, 8):
                if bc * bh * bw < 32 * warps:
                    continue
                for rows in ((1, 4, n_row_tiles) if backward else (1,)):
                    if rows <= n_row_tiles and (rows, warps) != (4, 4):
                        plans.add((bc, bh, bw, rows, warps))
    return sorted(plans)


def wgrad_candidates(N, C, H, gc, channels_last):
    plans = set()
    for elems in (256, 512):
        if channels_last:
            tiles = []
            for bc in (16, 32):
                if bc > 2 * pow2(gc):
                    continue
                p = max(1, elems // bc)
                bw = min(pow2(H), 16, p)
                tiles.append((bc, max(1, min(pow2(H), p // bw)), bw))
        else:
            bw = min(pow2(H), 64)
            bh = max(1, min(pow2(H), elems // bw))
            tiles = [(max(1, min(pow2(gc), elems // (bh * bw))), bh, bw)]
        for bc, bh, bw in tiles:
            n_img_tiles = -(-H // bh) * -(-H // bw)
            for imgs, per in ((1, max(1, n_img_tiles // 4)), (1, n_img_tiles), (8, n_img_tiles)):
                for warps in (4, 8):
                    plans.add((bc, bh, bw, imgs, per, warps))
    return sorted(plans)


def _inputs(N, C, H, gc, dtype_name, layout, seed=0):
    import torch
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    gen = torch.Generator(device="cuda").manual_seed(seed)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(N, C, H, H, device="cuda", generator=gen).to(dtype).contiguous(memory_format=fmt)
    g = torch.randn(N, C, H, H, device="cuda", generator=gen).to(dtype).contiguous(memory_format=fmt)
    params = []
    for kh, kw in ((3, 3), (1, 11), (11, 1)):
        params += [(torch.rand(gc, 1, kh, kw, device="cuda", generator=gen) - 0.5).to(dtype),
                   (torch.rand(gc, device="cuda", generator=gen) - 0.5).to(dtype)]
    return x, g, params


def _run(launch, direction, x, g, params):
    w_hw, b_hw, w_w, b_w, w_h, b_h = params
    if direction == "fwd":
        return [launch.forward(x, *params, 1)]
    if direction == "wgrad":
        return launch._weight_grads_split(g, x, w_hw, w_w, w_h, 1)
    return launch.backward(g, x, w_hw, w_w, w_h, 1, True, True)


def _check(task):
    """Worker: compile one plan (filling Triton's cache) and check it on a batch of 2."""
    C, H, gc, dtype_name, layout, direction, plan = task
    try:
        import torch
        from inception_dwconv.backends.triton import launch
        from inception_dwconv.reference import inception_dwconv_reference
        launch.PLAN_OVERRIDE.clear()
        launch.PLAN_OVERRIDE[direction] = plan
        x, g, params = _inputs(2, C, H, gc, dtype_name, layout, seed=1)
        got = _run(launch, direction, x, g, params)
        x64 = x.double().requires_grad_(True)
        p64 = [p.double().requires_grad_(True) for p in params]
        y64 = inception_dwconv_reference(x64, *p64, 1)
        if direction == "fwd":
            refs = [y64]
        else:
            gx, gwhw, gbhw, gww, gbw, gwh, gbh = torch.autograd.grad(y64, [x64] + p64, g.double())
            refs = [gx, gwhw, gbhw, gww, gbw, gwh, gbh]
            if direction == "wgrad":
                refs = refs[1:]
        tol = 1e-4 if dtype_name == "fp32" else 2e-2
        for a, r in zip(got, refs):
            err = float((a.double() - r.detach()).norm() / r.detach().norm().clamp_min(1e-30))
            if not err <= tol:
                return task, f"rel err {err:.1e}"
        return task, None
    except Exception as exc:  # noqa: BLE001 - a plan that does not compile or run is reported
        return task, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dtypes", default="fp32")
    ap.add_argument("--layouts", default="nchw,channels_last")
    ap.add_argument("--directions", default="fwd,wgrad")
    ap.add_argument("--jobs", type=int, default=14)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch
    import triton.testing
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    from inception_dwconv.backends.triton import launch

    cases = [(C, H, C // 8, d, lay, direction)
             for (C, H), d, lay, direction in itertools.product(
                 STAGES, args.dtypes.split(","), args.layouts.split(","), args.directions.split(","))]
    plans = {}
    for case in cases:
        C, H, gc, _, lay, direction = case
        cl = lay == "channels_last"
        if direction == "wgrad":
            current = launch._wgrad_plan(args.batch, C, H, H, gc, cl, False)
            cands = wgrad_candidates(args.batch, C, H, gc, cl)
        else:
            current = launch._plan(args.batch, C, H, H, gc, cl, direction == "bwd", False)
            cands = candidates(C, H, gc, cl, direction == "bwd")
        plans[case] = [current] + [p for p in cands if p != current]
    tasks = [case + (plan,) for case in cases for plan in plans[case]]
    emit = Tee(args.out)

    emit(f"# {torch.cuda.get_device_name()}: {len(tasks)} plans over {len(cases)} cases, batch {args.batch}")
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        failures = dict(pool.map(_check, tasks, chunksize=1))
    bad = {t: e for t, e in failures.items() if e}
    for t, e in sorted(bad.items()):
        emit(f"# plan failed: {t}: {e}")

    best_table = {}
    emit("case | current plan ms | best plan ms | speedup | plans tried")
    for case in cases:
        C, H, gc, dname, lay, direction = case
        x, g, params = _inputs(args.batch, C, H, gc, dname, lay)
        times = {}
        for plan in plans[case]:
            if bad.get(case + (plan,)) is not None:
                continue
            launch.PLAN_OVERRIDE.clear()
            launch.PLAN_OVERRIDE[direction] = plan
            try:
                times[plan] = triton.testing.do_bench(lambda: _run(launch, direction, x, g, params),
                                                      warmup=10, rep=40, return_mode="median")
            except Exception as exc:  # noqa: BLE001
                emit(f"# timing failed: {case} {plan}: {type(exc).__name__}")
        launch.PLAN_OVERRIDE.clear()
        del x, g, params
        if not times:
            emit(f"{case} | no plan ran")
            continue
        current = plans[case][0]
        best = min(times, key=times.get)
        cur = times.get(current, float("nan"))
        best_table[case] = best
        emit(f"{args.batch}x{C}x{H}x{H} {dname} {lay} {direction} | {current} {cur:.4f} | {best} "
             f"{times[best]:.4f} | {cur / times[best]:.2f}x | {len(times)}")
    emit("# best plans: " + repr({f"{c[0]}/{c[1]}/{c[3]}/{c[4]}/{c[5]}": p for c, p in best_table.items()}))


if __name__ == "__main__":
    main()
