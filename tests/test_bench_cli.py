"""The benchmark CLI (inception_dwconv.bench): argument errors, output files, WRONG detection."""
import csv
import importlib.util
import json
import os
import signal

import pytest
import torch

import inception_dwconv
import inception_dwconv.backends.cpu as cpu_backend
import inception_dwconv.backends.reference as ref_backend
from inception_dwconv import bench, ops
from helpers import REPO, load_script

TINY = ["--shape", "1,16,8,8", "--ratio", "0.25", "--repeat", "3", "--warmup", "1", "--device", "cpu",
        "--layout", "nchw", "--quiet"]


def run_main(argv):
    """main's return code, or the SystemExit code for argument errors."""
    try:
        return bench.main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv, needle", [
    (["--backends", "nonesuch"], "unknown backend 'nonesuch'"),
    (["--shape", "1,2,3"], "bad --shape '1,2,3'"),
    (["--shape", "1,x,8,8"], "bad --shape"),
    (["--shape", "1,4,8,8"], "gc = int(4 * 0.125) = 0"),
    (["--shape", "1,16,8,8", "--ratio", "0.4"], "3 * gc = 18"),
    (["--dtype", "fp8"], "unknown dtype 'fp8'"),
    (["--layout", "nhwc"], "unknown layout 'nhwc'"),
    (["--mode", "backward"], "unknown mode 'backward'"),
    (["--device", "cpu", "--backends", "cuda"], "backend 'cuda' is not available on cpu"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--shape", "1,16,8,8", "--band", "4"], "--band must be a positive odd"),
    (["--device", "tpu"], "invalid choice"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_with_one_line(argv, needle, capsys):
    assert run_main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_device_cuda_without_gpu(capsys):
    assert run_main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and len(err.strip().splitlines()) == 1


def test_backend_not_available_here(monkeypatch, capsys):
    monkeypatch.setattr(cpu_backend, "is_available", lambda: False)
    monkeypatch.setattr(cpu_backend, "why_unavailable", lambda: "not built in this test")
    assert run_main(TINY + ["--backends", "reference,cpu"]) == 2
    assert "backend 'cpu' is not available on cpu here: not built in this test" in capsys.readouterr().err


def test_plot_without_matplotlib_is_an_argument_error(tmp_path, capsys):
    if importlib.util.find_spec("matplotlib") is not None:
        assert run_main(TINY + ["--backends", "reference", "--plot", str(tmp_path / "p.png")]) == 0
        assert (tmp_path / "p.png").stat().st_size > 0
    else:
        assert run_main(TINY + ["--backends", "reference", "--plot", str(tmp_path / "p.png")]) == 2
        assert "--plot needs matplotlib" in capsys.readouterr().err
        assert not (tmp_path / "p.png").exists()


def test_tiny_run_writes_csv_and_json(tmp_path, capsys):
    csv_path, json_path = tmp_path / "out" / "r.csv", tmp_path / "r.json"
    rc = run_main(TINY + ["--backends", "reference", "--mode", "fwd,bwd,fwdbwd", "--layout",
                          "nchw,channels_last", "--csv", str(csv_path), "--json", str(json_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "% floor" in out and "x eager" in out and "threads: " in out

    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == bench.COLUMNS
        rows = list(reader)
    # per layout: one copy row + reference x 3 modes
    assert len(rows) == 2 * (1 + 3)
    for r in rows:
        assert r["status"] == "ok", r
        assert (r["N"], r["C"], r["H"], r["W"], r["gc"]) == ("1", "16", "8", "8", "4")
        assert float(r["p20_ms"]) <= float(r["median_ms"]) <= float(r["p80_ms"])
        assert float(r["gbps"]) > 0 and float(r["floor_ms"]) > 0
        assert r["device"] == "cpu" and r["torch"] == torch.__version__
        assert int(r["threads"]) == torch.get_num_threads()
        assert r["git_commit"] and r["timestamp"] and r["device_name"]
    assert {(r["backend"], r["mode"]) for r in rows} == {
        ("copy", "fwd"), ("reference", "fwd"), ("reference", "bwd"), ("reference", "fwdbwd")}
    assert {r["layout"] for r in rows} == {"nchw", "channels_last"}
    for r in rows:
        if r["backend"] == "reference":
            assert float(r["speedup_vs_eager"]) == 1.0
            assert float(r["max_rel_err"]) < 1e-4

    with open(json_path) as f:
        doc = json.load(f)
    assert doc["columns"] == bench.COLUMNS
    assert len(doc["rows"]) == len(rows)
    assert all(set(r) == set(bench.COLUMNS) and r["status"] == "ok" for r in doc["rows"])
    assert doc["meta"]["threads"] == torch.get_num_threads()


def test_amp_dtypes_run_every_backend_under_autocast(tmp_path):
    # amp-bf16 / amp-fp16: fp32 tensors, each backend (eager too) called under torch.autocast; the
    # eager rows then carry the autocast dtype's rounding error against the fp64 reference.
    names = "reference,cpu" if "cpu" in inception_dwconv.available_backends() else "reference"
    csv_path = tmp_path / "r.csv"
    rc = run_main(TINY + ["--backends", names, "--dtype", "amp-bf16,amp-fp16", "--mode", "fwd,fwdbwd",
                          "--csv", str(csv_path)])
    assert rc == 0
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["dtype"] for r in rows} == {"amp-bf16", "amp-fp16"}
    assert all(r["status"] == "ok" for r in rows)
    # backends with one-pass autocast kernels get a second row with that route off (cpu: bf16 only)
    composed = {(r["backend"], r["dtype"]) for r in rows if r["backend"].endswith("-composed")}
    assert composed == ({("cpu-composed", "amp-bf16")} if "cpu" in names else set())
    for r in rows:
        if r["backend"] != "copy":
            # bf16 keeps 8 bits, fp16 11: errors well above fp32's, within the low-precision tolerance
            floor = 1e-3 if r["dtype"] == "amp-bf16" else 1e-4
            assert floor < float(r["max_rel_err"]) < 2e-2, r


@pytest.mark.skipif("cpu" not in inception_dwconv.available_backends(), reason="no cpu backend")
def test_composed_rows_switch_the_one_pass_route_off(monkeypatch):
    monkeypatch.delenv(ops.AUTOCAST_ENV_VAR, raising=False)
    assert ops.has_autocast_kernels("cpu", torch.bfloat16)
    with bench._autocast_composed(True):
        assert not ops.has_autocast_kernels("cpu", torch.bfloat16)
    assert ops.AUTOCAST_ENV_VAR not in os.environ and ops.has_autocast_kernels("cpu", torch.bfloat16)
    # and the composed row computes through the composition: no one-pass call
    used = []
    real = ops.call_forward_autocast
    monkeypatch.setattr(ops, "call_forward_autocast", lambda *a: used.append(1) or real(*a))
    x = torch.randn(1, 16, 5, 5)
    params = [torch.randn(4, 1, 3, 3), torch.randn(4), torch.randn(4, 1, 1, 11), torch.randn(4),
              torch.randn(4, 1, 11, 1), torch.randn(4)]
    composed = bench.make_function("cpu" + bench.COMPOSED, 1, torch.bfloat16)(x, params)
    assert not used
    one_pass = bench.make_function("cpu", 1, torch.bfloat16)(x, params)
    assert used and torch.equal(composed, one_pass)


def test_interrupted_run_writes_the_rows_so_far(monkeypatch, tmp_path):
    # SIGTERM (timeout) or Ctrl-C in the middle of a run: the rows measured so far are written and
    # main returns 130.
    real = bench.Runner.timed
    calls = []

    def timed(self, fn, use_graph=False):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here, as under `timeout`
        return real(self, fn, use_graph)

    monkeypatch.setattr(bench.Runner, "timed", timed)
    before = signal.getsignal(signal.SIGTERM)
    csv_path = tmp_path / "r.csv"
    rc = run_main(TINY + ["--backends", "reference", "--mode", "fwd,fwdbwd", "--layout", "nchw,channels_last",
                          "--csv", str(csv_path)])
    assert rc == 130 and signal.getsignal(signal.SIGTERM) is before
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["status"] == "ok" and r["layout"] == "nchw" for r in rows)


def _patch_cpu(monkeypatch, forward=None, backward=None):
    """Make the cpu backend 'available' and route it through the given (broken) functions;
    the benchmark reaches them through the real public path: inception_dwconv(..., backend="cpu")
    -> the torch.library op -> backends.get("cpu").forward / .backward. The C++ autograd route of
    the compiled backends (ops._cpp_autograd_op) calls the kernels without these Python functions,
    so it is switched off."""
    monkeypatch.setattr(cpu_backend, "is_available", lambda: True)
    monkeypatch.setattr(ops, "_cpp_autograd_op", lambda: None)
    monkeypatch.setattr(cpu_backend, "forward", forward or ref_backend.forward)
    monkeypatch.setattr(cpu_backend, "backward", backward or ref_backend.backward)


def test_wrong_forward_is_flagged_and_not_timed(monkeypatch, tmp_path):
    calls = []

    def bad_forward(*args):
        calls.append(1)
        return ref_backend.forward(*args).mul_(1.5)

    _patch_cpu(monkeypatch, forward=bad_forward)
    csv_path = tmp_path / "r.csv"
    rc = run_main(TINY + ["--backends", "reference,cpu", "--mode", "fwd,fwdbwd", "--csv", str(csv_path)])
    assert rc == 1  # some rows not ok
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    cpu_rows = [r for r in rows if r["backend"] == "cpu"]
    assert len(cpu_rows) == 2
    for r in cpu_rows:
        assert r["status"] == "WRONG"
        assert "output rel err" in r["error"]
        assert r["median_ms"] == "" and r["gbps"] == "" and r["speedup_vs_eager"] == ""
    assert len(calls) == 1  # the check's single forward; never timed
    assert all(r["status"] == "ok" for r in rows if r["backend"] != "cpu")


def test_wrong_backward_is_flagged_forward_still_timed(monkeypatch, tmp_path):
    def bad_backward(grad_out, x, *rest):
        grads = ref_backend.backward(grad_out, x, *rest)
        grads[0] = grads[0] * 1.5
        return grads

    _patch_cpu(monkeypatch, backward=bad_backward)
    json_path = tmp_path / "r.json"
    rc = run_main(TINY + ["--backends", "reference,cpu", "--mode", "fwd,bwd,fwdbwd", "--json", str(json_path)])
    assert rc == 1
    with open(json_path) as f:
        rows = {(r["backend"], r["mode"]): r for r in json.load(f)["rows"]}
    assert rows[("cpu", "fwd")]["status"] == "ok" and rows[("cpu", "fwd")]["median_ms"] > 0
    for mode in ("bwd", "fwdbwd"):
        r = rows[("cpu", mode)]
        assert r["status"] == "WRONG" and "grad_x rel err" in r["error"] and r["median_ms"] is None


def test_bench_cpu_script_argv(tmp_path):
    argv = load_script("benchmarks/bench_cpu.py").build_argv(str(tmp_path))
    assert argv[argv.index("--preset") + 1] == "tiny" and argv[argv.index("--batch") + 1] == "8"
    assert argv[argv.index("--csv") + 1] == str(tmp_path / "cpu-latest.csv")
    assert argv[argv.index("--json") + 1] == str(tmp_path / "cpu-latest.json")
    backends = argv[argv.index("--backends") + 1].split(",")
    assert backends[0] == "reference"
    assert ("cpu" in backends) == cpu_backend.is_available()
    # the argv is valid for the CLI (parsing and validation only)
    args = bench.build_parser().parse_args(argv)
    bench.resolve_args(args)


# The GPU scripts run only on a lent GPU, with minutes to spare: what of them runs without one is
# checked here, so that they do not rot between GPU sessions.

def test_gpu_check_script_parses():
    import subprocess
    out = subprocess.run(["bash", "-n", os.path.join(REPO, "scripts", "gpu_check.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(not cpu_backend.is_available(), reason="needs the compiled CPU kernels")
def test_gpu_profile_host_profile_on_cpu_tensors(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, "scripts"))  # gpu_profile imports _tee from there
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    mod = load_script("scripts/gpu_profile.py")
    x = torch.randn(2, 24, 7, 7)
    params = []
    for kh, kw in ((3, 3), (1, 11), (11, 1)):
        params += [torch.randn(3, 1, kh, kw), torch.randn(3)]
    lines = []
    mod.host_profile(lines.append, "cpu", x, torch.randn_like(x), params, 3)
    heads = [line for line in lines if line.startswith("## host profile")]
    assert len(heads) == 2 and "cpu forward" in heads[0] and "cpu backward" in heads[1]
    assert any("fused_backward" in line for line in lines)
