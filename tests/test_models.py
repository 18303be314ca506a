"""InceptionNeXt models built on the fused mixer, and convert() of released / timm models.

timm is only the thing compared against: tests that need it skip when it is not installed.
Everything runs on CPU with small inputs (the whole file takes well under a minute or two on
2 cores).
"""
import copy
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import inception_dwconv
from inception_dwconv import InceptionDWConv2d as FusedMixer
from inception_dwconv.convert import convert
from inception_dwconv.models import (InceptionNeXt, inception_next_atto, inception_next_base,
                                     inception_next_small, inception_next_tiny)
from helpers import load_script

VARIANTS = {
    "inception_next_atto": inception_next_atto,
    "inception_next_tiny": inception_next_tiny,
    "inception_next_small": inception_next_small,
    "inception_next_base": inception_next_base,
}

CPU_FUSED = [b for b in inception_dwconv.available_backends("cpu") if b != "reference"]


def _timm():
    return pytest.importorskip("timm")


def _need_backend(name):
    if name not in inception_dwconv.available_backends("cpu"):
        pytest.skip(f"backend {name!r} is not available here "
                    f"(available: {inception_dwconv.available_backends()})")


@pytest.fixture(autouse=True)
def one_thread():
    # Deterministic and fast on a shared machine: eager fp64 depthwise convs run one small conv per
    # channel group, and intra-op threads fighting other processes slow that down by 10-100x.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- a test-local copy of the released token mixer (identity first), written from its semantics ---

class InceptionDWConv2d(nn.Module):
    """Released semantics: split channels as (identity, square, band-w, band-h), depthwise convs
    with 'same' zero padding on the last three, concatenate in the same order."""

    def __init__(self, in_channels, square_kernel_size=3, band_kernel_size=11, branch_ratio=0.125,
                 dilation=1, device=None, dtype=None):
        super().__init__()
        gc = int(in_channels * branch_ratio)
        kw = {"device": device, "dtype": dtype, "groups": gc}
        sq, band = dilation * (square_kernel_size - 1) // 2, dilation * (band_kernel_size - 1) // 2
        self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel_size, padding=sq, dilation=dilation, **kw)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel_size), padding=(0, band), dilation=(1, dilation), **kw)
        self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel_size, 1), padding=(band, 0), dilation=(dilation, 1), **kw)
        self.split_indexes = (in_channels - 3 * gc, gc, gc, gc)

    def forward(self, x):
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)


def _eager_mixer(square=3, band=11, ratio=0.125):
    def make(dim, dilation=1, device=None, dtype=None):
        return InceptionDWConv2d(dim, square, band, ratio, dilation=dilation, device=device, dtype=dtype)
    return make


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """O(1) random values everywhere (the default init has gamma = 1e-6, which would hide the token
    mixers from the logits), BN running statistics included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64) * 0.5 + 0.25)
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / fan_in ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.1
                        + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g, dtype=torch.float64) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g, dtype=torch.float64) + 0.5)
    return model


def _mixers(model):
    return [m for m in model.modules() if type(m).__name__ == "InceptionDWConv2d"]


# --- structure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(VARIANTS))
def test_state_dict_matches_timm(name):
    timm = _timm()
    ref = timm.create_model(name, pretrained=False, device="meta")
    ours = VARIANTS[name](device="meta")
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)  # same keys, same order
    for k, v in ref_sd.items():
        assert our_sd[k].shape == v.shape, k
        assert our_sd[k].dtype == v.dtype, k
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert all(isinstance(m, FusedMixer) for m in _mixers(ours))


def test_variant_settings():
    atto = inception_next_atto(device="meta", mixer_backend="reference")
    mixers = _mixers(atto)
    assert len(mixers) == 12 and all(m.backend == "reference" for m in mixers)
    assert mixers[0].dwconv_w.kernel_size == (1, 9) and mixers[0].split_indexes == (10, 10, 10, 10)
    tiny = inception_next_tiny(device="meta", num_classes=10, drop_path_rate=0.1)
    m = _mixers(tiny)[0]
    assert m.dwconv_h.kernel_size == (11, 1) and m.split_indexes == (60, 12, 12, 12)
    assert tiny.head.fc2.out_features == 10 and tiny.head.fc1.out_features == 3 * 768
    rates = [b.drop_path.p for s in tiny.stages for b in s.blocks if hasattr(b.drop_path, "p")]
    assert len(rates) == 17 and rates[-1] == pytest.approx(0.1)  # first block has rate 0 (Identity)
    assert inception_next_small(device="meta", num_classes=0).head.fc2.__class__ is nn.Identity
    with pytest.raises(ValueError):
        inception_next_atto(pretrained=True)


def test_output_shapes_and_backward():
    torch.manual_seed(0)
    model = InceptionNeXt(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), band_kernel_size=5,
                          branch_ratio=0.25, num_classes=7, drop_path_rate=0.2, mixer_backend="reference")
    x = torch.randn(2, 3, 32, 32)
    y = model(x)
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.forward_features(x).shape == (2, 128, 1, 1)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 384)


# --- timm weights in our model ------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # output_stride 16 downsample
@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("name,shape,output_stride", [
    ("inception_next_atto", (2, 3, 64, 64), 32),
    ("inception_next_atto", (1, 3, 64, 64), 16),   # stride traded for dilation: dilated mixers
    ("inception_next_tiny", (1, 3, 32, 32), 32),
])
def test_timm_weights_give_timm_logits(backend, name, shape, output_stride):
    timm = _timm()
    _need_backend(backend)
    ref = timm.create_model(name, pretrained=False, output_stride=output_stride).double()
    down = ref.stages[-1].downsample
    if output_stride != 32 and type(down[1]) is torch.nn.Conv2d and down[1].padding == (0, 0):
        # seen with the timm of the GPU image: its dilated stage's stride-1 2x2 downsample has no
        # padding and drops a row and a column; our models follow the later timm ('same' padding)
        pytest.skip(f"timm {timm.__version__} pads the dilated stage's downsample differently")
    _randomize(ref, seed=1).eval()
    ours = VARIANTS[name](mixer_backend=backend, output_stride=output_stride).double().eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        y_ref, y = ref(x), ours(x)
    assert y_ref.abs().max() > 1e-2  # the check is not vacuous
    # fp64, same math up to summation order in the depthwise convs
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)


def test_our_weights_load_into_timm():
    timm = _timm()
    ours = _randomize(inception_next_atto(mixer_backend="reference"), seed=3).eval()
    ref = timm.create_model("inception_next_atto", pretrained=False).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


# --- convert() ----------------------------------------------------------------------------------

def _grads_close(a: nn.Module, b: nn.Module, rtol, atol):
    ga = dict(a.named_parameters())
    gb = dict(b.named_parameters())
    assert list(ga) == list(gb)
    for k in ga:
        assert ga[k].grad is not None and gb[k].grad is not None, k
        torch.testing.assert_close(gb[k].grad, ga[k].grad, rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_convert_timm_model_matches_unconverted(backend):
    timm = _timm()
    _need_backend(backend)
    ref = _randomize(timm.create_model("inception_next_atto", pretrained=False).double(), seed=5)
    model = copy.deepcopy(ref)
    params_before = {k: p for k, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    keys_before = list(model.state_dict())

    out = convert(model, backend=backend)

    assert out is model
    mixers = _mixers(model)
    assert len(mixers) == 12 and all(isinstance(m, FusedMixer) and m.backend == backend for m in mixers)
    assert not any(isinstance(m, FusedMixer) for m in _mixers(ref))
    assert list(model.state_dict()) == keys_before
    for k, p in model.named_parameters():  # the very same Parameter objects
        assert p is params_before[k], k
        assert p.dtype == torch.float64
    # train mode (BN batch statistics), dropout-free: a deterministic forward
    ref.train()
    model.train()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    target = torch.tensor([3, 7])
    loss_ref = F.cross_entropy(ref(x), target)
    loss = F.cross_entropy(model(x), target)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-10, atol=1e-12)
    loss_ref.backward()
    loss.backward()
    _grads_close(ref, model, rtol=1e-8, atol=1e-12)
    # the optimizer built before convert still drives the converted model's parameters
    w = model.stages[0].blocks[0].token_mixer.dwconv_w.weight
    before = w.detach().clone()
    opt.step()
    assert not torch.equal(before, w.detach())
    torch.testing.assert_close(w.detach(), before - 0.1 * w.grad)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated in torch 2.14, still used
def test_converted_timm_model_still_scripts():
    """timm's InceptionNeXt scripts with torch.jit.script; after convert() it must still, with the
    same output."""
    timm = _timm()
    ref = _randomize(timm.create_model("inception_next_atto", pretrained=False).double(), seed=7).eval()
    x = torch.randn(1, 3, 40, 40, dtype=torch.float64)
    with torch.no_grad():
        y_ref = ref(x)
        convert(ref)
        y = torch.jit.script(ref)(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_our_model_scripts():
    """inception_next_atto of this package under torch.jit.script: same output as eager, and
    gradients flow through the scripted fused mixers."""
    model = _randomize(inception_next_atto().double(), seed=8)
    model.set_grad_checkpointing(True)  # not compiled by TorchScript, as in timm
    x = torch.randn(2, 3, 40, 40, dtype=torch.float64)
    scripted = torch.jit.script(model)
    y, ys = model(x), scripted(x)
    torch.testing.assert_close(ys, y, rtol=1e-12, atol=1e-12)
    ys.sum().backward()
    mixer = model.stages[0].blocks[0].token_mixer
    assert mixer.dwconv_w.weight.grad is not None and mixer.dwconv_w.weight.grad.abs().sum() > 0


def test_convert_twice_is_a_noop_and_switches_backend():
    timm = _timm()
    model = timm.create_model("inception_next_atto", pretrained=False)
    convert(model, backend="reference")
    mixers = _mixers(model)
    params = list(model.parameters())
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    model.eval()
    with torch.no_grad():
        y1 = model(x)
    assert convert(model, backend="reference") is model
    assert _mixers(model) == mixers and all(a is b for a, b in zip(model.parameters(), params))
    convert(model)  # switches the backend of the fused modules only
    assert _mixers(model) == mixers and all(m.backend == "auto" for m in mixers)
    with torch.no_grad():
        torch.testing.assert_close(model(x), y1, rtol=1e-5, atol=1e-5)


def test_convert_our_model_sets_backend():
    model = inception_next_atto(mixer_backend="reference", device="meta")
    mixers = _mixers(model)
    convert(model, backend="auto")
    assert _mixers(model) == mixers and all(m.backend == "auto" for m in mixers)
    with pytest.raises(ValueError):
        convert(model, backend="no-such-backend")


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_convert_local_released_module(dilation, dtype):
    torch.manual_seed(8)
    mixer = InceptionDWConv2d(24, 3, 7, 0.25, dilation=dilation, dtype=dtype)
    ref = nn.Sequential(nn.Conv2d(3, 24, 1, dtype=dtype), mixer, nn.GELU(), nn.Conv2d(24, 5, 1, dtype=dtype))
    ref.append(mixer.__class__(5, 3, 3, 0.2, dtype=dtype))  # gc = 1, identity = 2
    model = copy.deepcopy(ref)
    convert(model, backend="reference")
    assert isinstance(model[1], FusedMixer) and isinstance(model[4], FusedMixer)
    assert model[1].dilation == dilation and model[1].split_indexes == (6, 6, 6, 6)
    assert model[4].split_indexes == (2, 1, 1, 1)
    assert all(p.dtype == dtype for p in model.parameters())
    x = torch.randn(2, 3, 12, 10, dtype=dtype)
    y_ref, y = ref(x), model(x)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(y, y_ref, **tol)
    g = torch.randn_like(y)
    y_ref.backward(g)
    y.backward(g)
    _grads_close(ref, model, **tol)


def test_convert_root_shared_and_lookalikes():
    # the root itself: a new module is returned
    root = InceptionDWConv2d(16, branch_ratio=0.25)
    new = convert(root, backend="reference")
    assert isinstance(new, FusedMixer) and new.dwconv_hw is root.dwconv_hw
    # a mixer shared by two parents becomes one fused module
    shared = InceptionDWConv2d(16, branch_ratio=0.25)
    model = nn.ModuleDict({"a": nn.Sequential(shared), "b": nn.Sequential(shared)})
    convert(model, backend="reference")
    assert model["a"][0] is model["b"][0] and isinstance(model["a"][0], FusedMixer)
    # a look-alike that does not compute the released op is left alone, or refused with strict=True
    odd = InceptionDWConv2d(16, branch_ratio=0.25)
    odd.dwconv_w.padding = (0, 0)
    holder = nn.Sequential(odd)
    assert convert(holder)[0] is odd
    with pytest.raises(ValueError, match="padding"):
        convert(holder, strict=True)
    # a module with the right name but missing pieces is not touched
    class Other(nn.Module):
        pass
    Other.__name__ = "InceptionDWConv2d"
    other = Other()
    assert convert(nn.Sequential(other))[0] is other


# --- training follows the reference mixer ---------------------------------------------------------

def _train_curve(model, steps, dtype, lr=0.01, batch=16):
    """SGD + momentum on a fresh synthetic batch every step (a fixed generator, so both models see
    the same stream): 10 classes, x = 0.15 * template[y] + N(0, 1). The noise keeps the loss O(1)
    for all 200 steps (it falls from ~2.2 to ~1.5), so a relative loss difference stays meaningful."""
    g = torch.Generator().manual_seed(123)
    templates = torch.randn(10, 3, 32, 32, generator=g, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    model.train()
    for _ in range(steps):
        y = torch.randint(0, 10, (batch,), generator=g)
        x = 0.15 * templates[y] + torch.randn(batch, 3, 32, 32, generator=g, dtype=torch.float64)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x.to(dtype)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float64)


def _small_model(dtype, **kw):
    # atto-like: band 9 / ratio 1/4 mixers (gc = 4 .. 32), tiny depth and width; layer scale 0.1 so
    # that the mixers shape the loss from step 0 (with the default 1e-6 they barely would)
    return InceptionNeXt(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), band_kernel_size=9, branch_ratio=0.25,
                         num_classes=10, ls_init_value=0.1, dtype=dtype, **kw)


# Per-step relative loss difference |fused - ref| / ref over 200 steps: (first 20 steps, all steps).
# fp64: each op agrees to ~1e-16 relative; the dynamics amplify that ~100x over 200 steps
#       (measured max 1e-13 over seeds 9-11), so 1e-8 is ample and still catches any real bug.
# fp32: per-op differences of ~1e-7 (summation order in the depthwise convs) are amplified the same
#       way: measured (backend "cpu", 1 thread, seeds 9-12) 4e-7 .. 9e-7 in the first 20 steps and
#       7e-5 .. 9e-5 over 200 steps. Bounds: 2e-5 early (a wrong gradient shows at >1e-3 after a few
#       steps), 2e-3 overall (~20x the measurement, room for other CPUs' summation orders).
CONVERGENCE_RTOL = {torch.float64: (1e-8, 1e-8), torch.float32: (2e-5, 2e-3)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("backend", ["cpu"])
def test_training_follows_reference_mixer(backend, dtype):
    _need_backend(backend)
    steps = 200
    torch.manual_seed(9)
    ref = _small_model(dtype, token_mixer=_eager_mixer(3, 9, 0.25))  # plain split / conv / cat autograd
    fused = _small_model(dtype, mixer_backend=backend)
    fused.load_state_dict(ref.state_dict())
    t0 = time.perf_counter()
    ref_losses = _train_curve(ref, steps, dtype)
    fused_losses = _train_curve(fused, steps, dtype)
    elapsed = time.perf_counter() - t0
    assert ref_losses[-20:].mean() < 0.8 * ref_losses[:20].mean()  # it actually trains
    rel = (fused_losses - ref_losses).abs() / ref_losses.abs()
    early, overall = rel[:20].max().item(), rel.max().item()
    print(f"\n[{backend} {dtype}] relative loss difference: first 20 steps {early:.2e}, all {steps} "
          f"steps {overall:.2e} (at step {rel.argmax().item()}); loss {ref_losses[:20].mean():.3f} -> "
          f"{ref_losses[-20:].mean():.3f}; {elapsed:.1f}s")
    tol_early, tol_all = CONVERGENCE_RTOL[dtype]
    assert early <= tol_early, f"first 20 steps: max relative loss difference {early:.3e} > {tol_early:.0e}"
    assert overall <= tol_all, f"max relative loss difference {overall:.3e} > {tol_all:.0e}"


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_bench_models_bad_device_is_a_usage_error(device, capsys):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here")
    with pytest.raises(SystemExit) as exc:
        load_script("benchmarks/bench_models.py").main(["--device", device, "--out", ""])
    assert exc.value.code == 2
    assert "--device" in capsys.readouterr().err
