"""Developer tool: compile the kernels for an H100 (sm_90) without a GPU and print registers and
spills per tile plan. The interpreter never type-checks the kernels the way the compiler does, so
run this after editing ``kernels.py``:

    /work/venv/bin/python -m inception_dwconv.backends.triton._compile_check

(TRITON_INTERPRET must be unset.)
"""
import os
import re
import subprocess
import sys
import tempfile

import torch
import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import kernels
from .launch import _pow2, _plan, _wgrad_plan

_TL_NAME = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}


def _signature(fn, ptr_types, constexprs):
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ptr_types:
            sig[name] = ptr_types[name]
        else:
            sig[name] = "i32"
    return sig


def compile_one(fn, ptr_types, constexprs, num_warps, arch=90):
    src = ASTSource(fn=fn, signature=_signature(fn, ptr_types, constexprs), constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"num_warps": num_warps})


def resources(kernel):
    """(registers, local memory bytes per thread = spills) read from the cubin with cuobjdump."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True,
                             text=True).stdout
    regs = re.search(r"REG:(\d+)", out)
    local = re.search(r"LOCAL:(\d+)", out)
    return int(regs.group(1)) if regs else -1, int(local.group(1)) if local else -1


def check(N, C, H, W, gc, ks, kb, dtype, channels_last, dilation=1, round_code=0):
    """round_code: launch._ROUND's code of an autocast dtype (fp32 tensors; 0: none)."""
    t = _TL_NAME[dtype]
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    acc_name = "fp64" if dtype == torch.float64 else "fp32"
    rows = []
    for bwd in (False, True):
        bc, bh, bw, rpp, nw = _plan(N, C, H, W, gc, channels_last, bwd, False)
        common = dict(KS=ks, KW=kb, KH=kb, ACC=acc, ROWS_PER_PROG=rpp, BLOCK_C=bc, BLOCK_H=bh,
                      BLOCK_W=bw, INT64=False, SOFT=False)
        if not bwd:
            fn = kernels.forward_kernel
            ptrs = {k: f"*{t}" for k in ("x_ptr", "y_ptr", "whw_ptr", "bhw_ptr", "ww_ptr", "bw_ptr",
                                         "wh_ptr", "bh_ptr")}
            cst = dict(common, HAS_BHW=True, HAS_BW=True, HAS_BH=True, FLIP=False, ROUND=round_code)
        else:
            fn = kernels.backward_kernel
            ptrs = {k: f"*{t}" for k in ("g_ptr", "x_ptr", "gx_ptr", "whw_ptr", "ww_ptr", "wh_ptr")}
            ptrs["ws_ptr"] = f"*{acc_name}"
            cst = dict(common, LP=_pow2(max(ks * ks, kb) + 1), COMPUTE_INPUT=True,
                       COMPUTE_WEIGHT=True)
        k = compile_one(fn, ptrs, cst, nw)
        rows.append((("bwd" if bwd else "fwd"), (bc, bh, bw, rpp, nw), *resources(k)))
    # the split backward's weight-grad kernel
    bc, bh, bw, imgs, tiles, nw = _wgrad_plan(N, C, H, W, gc, channels_last, False)
    cst = dict(KS=ks, KW=kb, KH=kb, LP_S=_pow2(ks * ks), LP_W=_pow2(kb), LP_H=_pow2(kb), ACC=acc,
               BLOCK_C=bc, BLOCK_H=bh, BLOCK_W=bw, INT64=False, ROUND=round_code, SOFT=False)
    ptrs = {"g_ptr": f"*{t}", "x_ptr": f"*{t}", "ws_ptr": f"*{acc_name}"}
    k = compile_one(kernels.wgrad_kernel, ptrs, cst, nw)
    rows.append(("wgrad", (bc, bh, bw, imgs, tiles, nw), *resources(k)))
    return rows


def main():
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET to compile")
    shapes = [(96, 56, 12), (192, 28, 24), (384, 14, 48), (768, 7, 96)]
    for dtype in (torch.float32, torch.bfloat16):
        for cl in (False, True):
            for C, HW, gc in shapes:
                for kind, plan, regs, spills in check(128, C, HW, HW, gc, 3, 11, dtype, cl):
                    print(f"{str(dtype):15s} {'cl  ' if cl else 'nchw'} C={C:4d} {HW:2d}x{HW:<2d} "
                          f"{kind} plan(bc,bh,bw,rows,warps)={plan} regs={regs} local={spills}")
    for kind, plan, regs, spills in check(2, 40, 9, 9, 10, 5, 9, torch.float64, False):
        print(f"fp64 5/9 {kind} {plan} regs={regs} local={spills}")
    for name, code in (("bf16", 1), ("fp16", 2)):  # the one-pass autocast kernels (fp32 tensors)
        for kind, plan, regs, spills in check(128, 96, 56, 56, 12, 3, 11, torch.float32, False, round_code=code):
            print(f"autocast {name} nchw C=96 56x56 {kind} {plan} regs={regs} local={spills}")


if __name__ == "__main__":
    main()
