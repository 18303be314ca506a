"""convert(): swap the released / timm InceptionNeXt token mixer for the fused one, in place."""
from typing import Dict, Optional

import torch
from torch import nn

from . import backends
from .module import InceptionDWConv2d

__all__ = ["convert", "is_released_mixer"]

_CONV_NAMES = ("dwconv_hw", "dwconv_w", "dwconv_h")


def is_released_mixer(module: nn.Module) -> bool:
    """True for a module that looks like the released InceptionDWConv2d (sail-sg's, timm's or a
    copy): class named "InceptionDWConv2d", Conv2d children dwconv_hw / dwconv_w / dwconv_h and a
    split_indexes attribute. Our fused module is excluded."""
    if isinstance(module, InceptionDWConv2d):
        return False
    if type(module).__name__ != "InceptionDWConv2d" or not hasattr(module, "split_indexes"):
        return False
    return all(isinstance(getattr(module, n, None), nn.Conv2d) for n in _CONV_NAMES)


def _why_not_convertible(old: nn.Module) -> Optional[str]:
    """None when the released module's semantics are exactly what the fused op computes
    (identity | k x k | 1 x K | K x 1 depthwise, stride 1, symmetric zero 'same' padding)."""
    hw, w, h = (getattr(old, n) for n in _CONV_NAMES)
    try:
        split = tuple(int(s) for s in old.split_indexes)
    except TypeError:
        return f"split_indexes={old.split_indexes!r} is not a sequence of ints"
    if len(split) != 4:
        return f"split_indexes={split} does not have 4 entries"
    gc = hw.in_channels
    if split[1:] != (gc, gc, gc) or split[0] < 0:
        return f"split_indexes={split} does not match the conv channel count {gc}"
    for name, conv in zip(_CONV_NAMES, (hw, w, h)):
        if conv.in_channels != gc or conv.out_channels != gc or conv.groups != gc:
            return f"{name} is not a depthwise conv over {gc} channels"
        if tuple(conv.stride) != (1, 1):
            return f"{name} has stride {conv.stride}"
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str) and conv.padding != "same":
            return f"{name} has padding {conv.padding!r} / padding_mode {conv.padding_mode!r}"
        if type(conv).forward is not nn.Conv2d.forward:
            return f"{name} is a {type(conv).__name__} with its own forward"
    kh, kw = hw.kernel_size
    d = hw.dilation[0]
    expect = {
        "dwconv_hw": ((kh, kw), (d, d)),
        "dwconv_w": ((1, w.kernel_size[1]), (1, d)),
        "dwconv_h": ((h.kernel_size[0], 1), (d, 1)),
    }
    for name, conv in zip(_CONV_NAMES, (hw, w, h)):
        ks, dil = expect[name]
        if tuple(conv.kernel_size) != ks or tuple(conv.dilation) != dil:
            return f"{name} has kernel {conv.kernel_size} dilation {conv.dilation}, expected {ks} {dil}"
        if any(k % 2 == 0 for k in ks):
            return f"{name} has an even kernel size {conv.kernel_size}"
        pad = tuple(dd * (k - 1) // 2 for k, dd in zip(ks, dil))
        if conv.padding != "same" and tuple(conv.padding) != pad:
            return f"{name} has padding {conv.padding}, expected {pad}"
    if kh != kw:
        return f"dwconv_hw kernel {hw.kernel_size} is not square"
    if w.kernel_size[1] != h.kernel_size[0]:
        return f"band kernels differ: {w.kernel_size} vs {h.kernel_size}"
    dtypes = {conv.weight.dtype for conv in (hw, w, h)} | {conv.bias.dtype for conv in (hw, w, h)
                                                          if conv.bias is not None}
    devices = {conv.weight.device for conv in (hw, w, h)}
    if len(dtypes) != 1 or len(devices) != 1:
        return f"the convs mix dtypes {dtypes} / devices {devices}"
    return None


def _fused_from(old: nn.Module, backend: str) -> InceptionDWConv2d:
    hw, w, h = (getattr(old, n) for n in _CONV_NAMES)
    split = tuple(int(s) for s in old.split_indexes)
    channels, gc = sum(split), split[1]
    # (gc + 0.5) / C: int(C * ratio) == gc exactly, immune to float rounding of gc / C
    new = InceptionDWConv2d(channels, square_kernel_size=hw.kernel_size[0],
                            band_kernel_size=w.kernel_size[1], branch_ratio=(gc + 0.5) / channels,
                            dilation=hw.dilation[0], backend=backend, device="meta")
    # Adopt the original conv modules: the very same Parameter objects (optimizer state, device,
    # dtype, requires_grad and any hooks on the parameters carry over), and no allocation.
    for name, conv in zip(_CONV_NAMES, (hw, w, h)):
        setattr(new, name, conv)
    assert new.split_indexes == split, (new.split_indexes, split)
    # nothing of the meta-device construction is left: every tensor is one of the old convs'
    adopted = {id(t) for conv in (hw, w, h) for t in list(conv.parameters()) + list(conv.buffers())}
    assert {id(t) for t in list(new.parameters()) + list(new.buffers())} == adopted
    new.train(old.training)
    return new


def convert(model: nn.Module, backend: str = "auto", *, strict: bool = False) -> nn.Module:
    """Replaces, in place, every released / timm InceptionDWConv2d inside ``model`` by the fused
    :class:`inception_dwconv.InceptionDWConv2d` and returns ``model``.

    * Detection is by structure, not by import: a class named ``InceptionDWConv2d`` with Conv2d
      children ``dwconv_hw``, ``dwconv_w``, ``dwconv_h`` and ``split_indexes`` (timm's, sail-sg's,
      or a copy).
    * The Parameter objects are kept (the conv children are moved into the new module), so the
      state_dict keys, device, dtype and any optimizer holding the parameters keep working.
      Forward hooks registered on the old mixer modules themselves are not carried over.
    * Dilation and kernel sizes are read from the convs.
    * Fused modules already present only get ``backend`` set, so calling convert twice is safe
      (and is how to switch backends).
    * A look-alike whose convs do not compute the released op (stride, padding, ...) is left alone,
      or raises ValueError with ``strict=True``.
    * If ``model`` itself is a released mixer, the new module is returned (it cannot be replaced
      in place).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert expects an nn.Module, got {type(model).__name__}")
    if backend != "auto" and backend not in backends.BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected 'auto' or one of {backends.BACKENDS}")

    replaced: Dict[int, nn.Module] = {}

    def swap(module: nn.Module) -> nn.Module:
        if isinstance(module, InceptionDWConv2d):
            module.backend = backend
            return module
        if is_released_mixer(module):
            key = id(module)
            if key not in replaced:  # a mixer shared by several parents is converted once
                why = _why_not_convertible(module)
                if why is not None:
                    if strict:
                        raise ValueError(f"cannot convert {type(module).__qualname__}: {why}")
                    replaced[key] = module
                else:
                    replaced[key] = _fused_from(module, backend)
            return replaced[key]
        return module

    root = swap(model)
    if root is not model:
        return root
    # collect first, then mutate (named_modules must not see a changing tree)
    parents = [m for m in model.modules()]
    for parent in parents:
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            new = swap(child)
            if new is not child:
                parent._modules[name] = new
    return model
