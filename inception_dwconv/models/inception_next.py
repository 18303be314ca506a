"""InceptionNeXt (Yu et al., "InceptionNeXt: When Inception Meets ConvNeXt", CVPR 2024) built on the
fused InceptionDWConv2d token mixer.

The module tree is laid out so that ``state_dict()`` keys and shapes are identical to timm's
``inception_next_{atto,tiny,small,base}`` (and the released sail-sg checkpoints that timm loads):

    stem.0 (Conv2d 4x4/4), stem.1 (BatchNorm2d)
    stages.{i}.downsample.0 (BatchNorm2d), stages.{i}.downsample.1 (Conv2d 2x2/2)   [i > 0]
    stages.{i}.blocks.{j}.gamma                (layer scale, when ls_init_value)
    stages.{i}.blocks.{j}.token_mixer.dwconv_{hw,w,h}
    stages.{i}.blocks.{j}.norm                 (BatchNorm2d)
    stages.{i}.blocks.{j}.mlp.fc1 / mlp.fc2    (1x1 Conv2d)
    head.fc1 (Linear), head.norm (LayerNorm eps 1e-6), head.fc2 (Linear)

so timm / released weights load with ``model.load_state_dict(sd)`` unchanged.
"""
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..module import InceptionDWConv2d

__all__ = ["InceptionNeXt", "inception_next_atto", "inception_next_tiny", "inception_next_small",
           "inception_next_base", "MODEL_CONFIGS"]


class DropPath(nn.Module):
    """Stochastic depth on the residual branch, per sample (scaled by 1 / keep_prob)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConvMlp(nn.Module):
    """Pointwise MLP on NCHW maps: 1x1 conv, GELU, 1x1 conv (keys fc1 / fc2)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.fc1 = nn.Conv2d(dim, hidden, 1, **factory)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Conv2d(hidden, dim, 1, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class MlpHead(nn.Module):
    """Classifier head: global average pool, Linear (x mlp_ratio), GELU, LayerNorm, dropout, Linear."""

    def __init__(self, dim: int, num_classes: int = 1000, mlp_ratio: float = 3, drop: float = 0.0,
                 global_pool: str = "avg", device=None, dtype=None):
        super().__init__()
        if global_pool not in ("avg", "max"):
            raise ValueError(f"global_pool must be 'avg' or 'max', got {global_pool!r}")
        factory = {"device": device, "dtype": dtype}
        hidden = int(mlp_ratio * dim)
        self.global_pool = global_pool
        self.num_features = hidden
        self.fc1 = nn.Linear(dim, hidden, **factory)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(hidden, eps=1e-6, **factory)
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, num_classes, **factory) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3)) if self.global_pool == "avg" else x.amax(dim=(2, 3))
        x = self.drop(self.norm(self.act(self.fc1(x))))
        return x if pre_logits else self.fc2(x)


class InceptionNeXtBlock(nn.Module):
    """MetaNeXt block: x + drop_path(gamma * mlp(norm(token_mixer(x))))."""

    def __init__(self, dim: int, token_mixer: Callable[..., nn.Module], mlp_ratio: float = 4,
                 dilation: int = 1, ls_init_value: Optional[float] = 1e-6, drop_path: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        # registered first so that the key order matches timm's (own parameters precede children)
        self.gamma = nn.Parameter(torch.full((dim,), float(ls_init_value), **factory)) if ls_init_value else None
        self.token_mixer = token_mixer(dim, dilation=dilation, **factory)
        self.norm = nn.BatchNorm2d(dim, **factory)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), **factory)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.token_mixer(x)))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


class InceptionNeXtStage(nn.Module):
    def __init__(self, in_dim: int, dim: int, depth: int, token_mixer: Callable[..., nn.Module],
                 stride: int = 2, downsample_dilation: int = 1, dilation: int = 1,
                 drop_path_rates: Sequence[float] = (), ls_init_value: Optional[float] = 1e-6,
                 mlp_ratio: float = 4, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        if stride > 1 or downsample_dilation != dilation:
            # BN then a 2x2 conv; when the stride is traded for dilation (output_stride < 32) the
            # conv keeps the resolution with "same" padding (extra pixel at the bottom/right).
            pad = "same" if stride == 1 else 0
            self.downsample = nn.Sequential(
                nn.BatchNorm2d(in_dim, **factory),
                nn.Conv2d(in_dim, dim, 2, stride=stride, dilation=downsample_dilation, padding=pad, **factory),
            )
        else:
            if in_dim != dim:
                raise ValueError(f"a stage without downsampling needs in_dim == dim, got {in_dim} != {dim}")
            self.downsample = nn.Identity()
        rates = list(drop_path_rates) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            InceptionNeXtBlock(dim, token_mixer, mlp_ratio=mlp_ratio, dilation=dilation,
                               ls_init_value=ls_init_value, drop_path=rates[j], **factory)
            for j in range(depth)
        ])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for blk in self.blocks:  # (TorchScript compiles no checkpointing, as timm's model)
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            return x
        return self.blocks(x)


def _per_stage(value, n: int, name: str) -> Tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries, expected one per stage ({n})")
        return tuple(value)
    return (value,) * n


class InceptionNeXt(nn.Module):
    """InceptionNeXt image classifier (MetaNeXt with the Inception depthwise token mixer).

    Args:
        in_chans, num_classes, global_pool ("avg" | "max"), output_stride (32, 16 or 8)
        depths, dims: blocks and channels per stage
        square_kernel_size, band_kernel_size, branch_ratio: token mixer settings (a value or one
            per stage)
        mlp_ratios: block MLP expansion (value or per stage); head_mlp_ratio: head expansion
        drop_rate: head dropout; drop_path_rate: stochastic depth, linear 0 -> rate over all blocks
        ls_init_value: layer scale init (None / 0 disables gamma)
        mixer_backend: backend of every InceptionDWConv2d ("auto", "reference", "cpu", ...)
        token_mixer: optional factory ``f(dim, dilation=..., device=..., dtype=...) -> nn.Module``
            replacing the fused mixer (then the kernel / ratio / backend arguments are not used)
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 1000, global_pool: str = "avg",
                 output_stride: int = 32, depths: Sequence[int] = (3, 3, 9, 3),
                 dims: Sequence[int] = (96, 192, 384, 768),
                 square_kernel_size: Union[int, Sequence[int]] = 3,
                 band_kernel_size: Union[int, Sequence[int]] = 11,
                 branch_ratio: Union[float, Sequence[float]] = 0.125,
                 mlp_ratios: Union[float, Sequence[float]] = (4, 4, 4, 3), head_mlp_ratio: float = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 ls_init_value: Optional[float] = 1e-6, mixer_backend: str = "auto",
                 token_mixer: Optional[Callable[..., nn.Module]] = None, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        n = len(depths)
        if len(dims) != n:
            raise ValueError(f"depths and dims must have the same length, got {len(depths)} and {len(dims)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        squares = _per_stage(square_kernel_size, n, "square_kernel_size")
        bands = _per_stage(band_kernel_size, n, "band_kernel_size")
        ratios = _per_stage(branch_ratio, n, "branch_ratio")
        mlp_ratios = _per_stage(mlp_ratios, n, "mlp_ratios")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.mixer_backend = mixer_backend

        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], 4, stride=4, **factory),
            nn.BatchNorm2d(dims[0], **factory),
        )

        # stochastic depth: linear over all blocks, split per stage
        total = sum(depths)
        all_rates = torch.linspace(0, drop_path_rate, total, dtype=torch.float64).tolist() if total else []
        self.stages = nn.Sequential()
        self.feature_info = []
        prev, reduction, dilation = dims[0], 4, 1
        start = 0
        for i in range(n):
            stride = 2 if i > 0 else 1
            if reduction >= output_stride and stride > 1:
                dilation *= stride   # trade the stride for dilation past output_stride
                stride = 1
            reduction *= stride
            down_dilation = 1 if dilation in (1, 2) else 2
            if token_mixer is None:
                mixer = _fused_mixer(squares[i], bands[i], ratios[i], mixer_backend)
            else:
                mixer = token_mixer
            self.stages.append(InceptionNeXtStage(
                prev, dims[i], depths[i], mixer, stride=stride, downsample_dilation=down_dilation,
                dilation=dilation, drop_path_rates=all_rates[start:start + depths[i]],
                ls_init_value=ls_init_value, mlp_ratio=mlp_ratios[i], **factory))
            start += depths[i]
            prev = dims[i]
            self.feature_info.append({"num_chs": prev, "reduction": reduction, "module": f"stages.{i}"})
        self.num_features = prev
        self.head = MlpHead(prev, num_classes, mlp_ratio=head_mlp_ratio, drop=drop_rate,
                            global_pool=global_pool, **factory)
        self.head_hidden_size = self.head.num_features
        self.apply(_init_weights)

    def set_mixer_backend(self, backend: str) -> "InceptionNeXt":
        """Sets the backend of every fused token mixer."""
        from ..convert import convert
        convert(self, backend)
        self.mixer_backend = backend
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head.fc2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _fused_mixer(square: int, band: int, ratio: float, backend: str):
    def make(dim, dilation=1, device=None, dtype=None):
        return InceptionDWConv2d(dim, square_kernel_size=square, band_kernel_size=band, branch_ratio=ratio,
                                 dilation=dilation, backend=backend, device=device, dtype=dtype)
    return make


def _init_weights(m: nn.Module) -> None:
    # as timm / the released code: truncated normal (std .02, cut at +-2) for conv and linear weights,
    # zero biases; norms keep their defaults
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# The four released variants. atto: band kernel 9, branch ratio 1/4; the others 11 and 1/8.
MODEL_CONFIGS = {
    "inception_next_atto": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), band_kernel_size=9,
                                branch_ratio=0.25),
    "inception_next_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "inception_next_small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "inception_next_base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
}


def _build(name: str, kwargs) -> InceptionNeXt:
    if kwargs.pop("pretrained", False):
        raise ValueError("pretrained weights are not bundled; build the model and load a timm / released "
                         "state_dict with model.load_state_dict(sd) (the keys are identical)")
    return InceptionNeXt(**{**MODEL_CONFIGS[name], **kwargs})


def inception_next_atto(**kwargs) -> InceptionNeXt:
    """InceptionNeXt-A (4.2M params): depths (2, 2, 6, 2), dims (40 .. 320), band 9, ratio 1/4."""
    return _build("inception_next_atto", kwargs)


def inception_next_tiny(**kwargs) -> InceptionNeXt:
    """InceptionNeXt-T (28M params): depths (3, 3, 9, 3), dims (96 .. 768)."""
    return _build("inception_next_tiny", kwargs)


def inception_next_small(**kwargs) -> InceptionNeXt:
    """InceptionNeXt-S (49M params): depths (3, 3, 27, 3), dims (96 .. 768)."""
    return _build("inception_next_small", kwargs)


def inception_next_base(**kwargs) -> InceptionNeXt:
    """InceptionNeXt-B (87M params): depths (3, 3, 27, 3), dims (128 .. 1024)."""
    return _build("inception_next_base", kwargs)
