"""InceptionDWConv2d: a drop-in replacement for the released / timm token mixer."""
import warnings

import torch
from torch import nn
from torch.nn.modules import module as _nn_module

from . import backends
from .functional import inception_dwconv
from .reference import padding


def branch_channels(in_channels: int, branch_ratio: float) -> int:
    """gc, exactly as the released code computes it, with the checks it lacks."""
    gc = int(in_channels * branch_ratio)
    if gc < 1:
        raise ValueError(f"branch_ratio={branch_ratio} gives gc = int({in_channels} * {branch_ratio}) = {gc} "
                         f"channels per conv branch; it must be at least 1")
    if 3 * gc > in_channels:
        raise ValueError(f"branch_ratio={branch_ratio} gives 3 * gc = {3 * gc} conv channels, more than "
                         f"in_channels={in_channels}")
    return gc


# Hooks nn.Module runs when a module is called: the released module calls its convs, so hooks on
# them (torch.nn.utils.prune, weight_norm and spectral_norm recompute the weight in a forward
# pre-hook; feature extractors and model summaries use forward hooks) run there, and must here.
_CONV_HOOKS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
_GLOBAL_HOOKS = tuple(getattr(_nn_module, name, {}) for name in (
    "_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks",
    "_global_backward_hooks"))


def _called_convs_differ(convs, module_wide: bool = True) -> bool:
    """Whether calling these convs could compute something other than the fused op: a hook would
    run (their own or a global one), or a conv has a forward of its own (a QAT conv's fake-quantized
    weight, a quantized conv, any subclass that overrides forward; a parametrized conv keeps
    nn.Conv2d's forward and reads its computed weight through the attribute)."""
    conv2d_forward = nn.Conv2d.forward
    for conv in convs:
        if type(conv).forward is not conv2d_forward:
            return True
        d = conv.__dict__
        for name in _CONV_HOOKS:
            if d.get(name):
                return True
    return module_wide and any(_GLOBAL_HOOKS)


def _weight_and_bias(conv: nn.Module):
    """conv.weight and conv.bias; from conv._parameters when both are plain parameters there, else
    through the attributes (a parametrized conv, say, computes its weight on each access)."""
    params = conv._parameters
    if "weight" in params and "bias" in params:
        return params["weight"], params["bias"]
    return conv.weight, conv.bias


class InceptionDWConv2d(nn.Module):
    """Inception depthwise convolution (InceptionNeXt token mixer), fused.

    Same parameters (``dwconv_hw``, ``dwconv_w``, ``dwconv_h``) and ``split_indexes`` as the
    released module, so state_dicts load unchanged in both directions.
    """

    def __init__(self, in_channels: int = None, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125, *, dilation: int = 1, backend: str = "auto",
                 device=None, dtype=None, in_chs: int = None):
        super().__init__()
        if in_channels is None and in_chs is None:
            raise TypeError("InceptionDWConv2d needs in_channels (or timm's in_chs)")
        if in_channels is not None and in_chs is not None and in_channels != in_chs:
            raise TypeError(f"in_channels={in_channels} and in_chs={in_chs} disagree")
        in_channels = in_channels if in_channels is not None else in_chs
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        for name, k in (("square_kernel_size", square_kernel_size), ("band_kernel_size", band_kernel_size)):
            if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be a positive odd int, got {k!r}")
        if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
            raise ValueError(f"dilation must be a positive int, got {dilation!r}")
        if backend != "auto" and backend not in backends.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected 'auto' or one of {backends.BACKENDS}")
        gc = branch_channels(in_channels, branch_ratio)
        factory = {"device": device, "dtype": dtype}
        d = dilation
        self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel_size, padding=padding(square_kernel_size, d),
                                   dilation=d, groups=gc, **factory)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel_size), padding=(0, padding(band_kernel_size, d)),
                                  dilation=(1, d), groups=gc, **factory)
        self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel_size, 1), padding=(padding(band_kernel_size, d), 0),
                                  dilation=(d, 1), groups=gc, **factory)
        self.split_indexes = (in_channels - 3 * gc, gc, gc, gc)
        self.in_channels = in_channels
        self.dilation = dilation
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            # TorchScript (timm's models script, so a converted one must too): the custom op
            # directly, with the backend resolved per device when the module was scripted.
            backend = self._script_backends[1] if x.is_cuda else self._script_backends[0]
            if backend == "":
                raise RuntimeError("inception_dwconv: backend " + self.backend + " does not run on "
                                   "this device (resolved when the module was scripted)")
            return torch.ops.inception_dwconv.forward(
                x, self.dwconv_hw.weight, self.dwconv_hw.bias, self.dwconv_w.weight, self.dwconv_w.bias,
                self.dwconv_h.weight, self.dwconv_h.bias, self.dilation, backend)
        return self._forward(x)

    @torch.jit.unused
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # Submodules and parameters read from the dicts nn.Module keeps them in: nine lookups through
        # nn.Module.__getattr__ cost about 5 us a call, as much as the kernel on a small map.
        modules = self._modules
        hw, w, h = modules["dwconv_hw"], modules["dwconv_w"], modules["dwconv_h"]
        if _called_convs_differ((hw, w, h)):
            return self._forward_through_convs(x, hw, w, h)
        w_hw, b_hw = _weight_and_bias(hw)
        w_w, b_w = _weight_and_bias(w)
        w_h, b_h = _weight_and_bias(h)
        return inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation=self.dilation, backend=self.backend)

    @torch.jit.unused
    def _forward_through_convs(self, x, hw, w, h):
        """The released module's forward (split, the three convs called as modules, cat), so that
        hooks on the convs and convs with a forward of their own run as they do there; eager
        PyTorch speed."""
        if not getattr(self, "_warned_hooks", False):
            self._warned_hooks = True
            warnings.warn("InceptionDWConv2d: its dwconv_hw / dwconv_w / dwconv_h convs have hooks (e.g. "
                          "from torch.nn.utils.prune, weight_norm or spectral_norm, or module-wide ones) "
                          "or a forward other than nn.Conv2d's (e.g. QAT or quantized convs), so it calls "
                          "them as the released module does, at eager PyTorch speed, instead of the fused "
                          "kernels. Remove the hooks (prune.remove, remove_weight_norm, handle.remove()) "
                          "to get the fused path back.", RuntimeWarning, stacklevel=3)
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, hw(x_hw), w(x_w), h(x_h)), dim=1)

    def __prepare_scriptable__(self):
        """Called by torch.jit.script: fixes the backend the scripted forward uses on CPU and on
        CUDA tensors ("" where this module's backend does not run there or is not available)."""
        if _called_convs_differ((self.dwconv_hw, self.dwconv_w, self.dwconv_h), module_wide=False):
            # The scripted forward calls the fused op with the convs' weights; it cannot run their
            # hooks or their own forward as the eager module does (module-wide Python hooks do not
            # run in TorchScript for any module, so they are no reason to refuse).
            raise RuntimeError("InceptionDWConv2d: cannot script a module whose dwconv_hw / dwconv_w / "
                               "dwconv_h convs have hooks (e.g. torch.nn.utils.prune's) or a forward other "
                               "than nn.Conv2d's; remove the hooks (prune.remove, ...) first")
        resolved = []
        for device_type in ("cpu", "cuda"):
            try:
                resolved.append(backends.resolve(self.backend, device_type))
            except (ValueError, RuntimeError):
                resolved.append("")
        self._script_backends = resolved
        return self

    def extra_repr(self) -> str:
        return f"split_indexes={self.split_indexes}, dilation={self.dilation}, backend={self.backend!r}"
