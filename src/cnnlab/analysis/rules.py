"""Per-layer counting rules: multiply-accumulates (MACs) and how the receptive field moves.

One rule per layer kind, used both for modules (``nn.Conv2d``) and for the torch functions a
forward calls between modules (``x + y``, ``torch.cat``, ``F.adaptive_avg_pool2d``...). A rule
returns ``(macs, state)`` for one call at batch size 1.

MAC conventions (one MAC = one multiply and one add; FLOPs = 2 x MACs). They follow fvcore's
FlopCountAnalysis so totals can be compared with it:

- convolution: ``N * prod(output spatial) * weight.numel()`` (transposed: input spatial); bias ignored;
- linear / matmul: ``input.numel() * out_features``; bias ignored;
- BatchNorm at inference: 2 per element (normalize, then scale-and-shift), 1 without affine;
  LayerNorm/GroupNorm/InstanceNorm: 5 per element with affine, 4 without (fvcore's estimate);
- average pooling: one accumulate per window element read (adaptive: ``input.numel()``, as fvcore;
  fvcore skips non-adaptive average pooling and ``mean``, cnnlab counts them the same way);
- (bi/tri)linear interpolation: 2 MACs per axis per output element (bilinear 4, as fvcore),
  bicubic 16; nearest is a copy: 0 (fvcore counts 1 per output element);
- zero by rule: max pooling, activations, dropout, flatten/reshape, padding, element-wise add and
  multiply between branches, concatenation. They are comparisons or memory traffic, not MACs.

A layer with no rule is *unknown*: its MACs are ``None`` and the summary lists it, never as zero.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.modules.padding import _CircularPadNd, _ConstantPadNd, _ReflectionPadNd, _ReplicationPadNd
from torch.nn.modules.pooling import _AdaptiveAvgPoolNd, _AdaptiveMaxPoolNd, _AvgPoolNd, _MaxPoolNd

from cnnlab.analysis import receptive
from cnnlab.analysis.receptive import WHOLE, Field, State
from cnnlab.models.local import LocallyConnected2d

Result = tuple[int | None, State]

# --- geometry shared by modules and functions -------------------------------------------------


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _on_field(st: State, n: int, fn: Callable[[Field], State]) -> State:
    """Apply a spatial rule when ``st`` is a field with ``n`` axes; WHOLE stays WHOLE; else unknown."""
    if isinstance(st, Field) and st.axes == n:
        return fn(st)
    return WHOLE if st == WHOLE else None


def _spatial(st: State, ndim: int) -> range:
    """Indices of the spatial (trailing) dimensions of an ``ndim``-dimensional tensor."""
    axes = st.axes if isinstance(st, Field) else 0
    return range(ndim - axes, ndim)


def conv(st: State, x: Tensor, out: Tensor, weight: Tensor, kernel: Sequence[int], stride: Any, padding: Any,
         dilation: Any, transposed: bool = False) -> Result:
    n = len(kernel)
    stride, dilation = _tuple(stride, n), _tuple(dilation, n)
    if isinstance(padding, str):  # 'same' pads d(k-1)//2 on the left (the extra one goes right)
        padding = (0,) * n if padding == "valid" else tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    padding = _tuple(padding, n)
    positions = math.prod((x if transposed else out).shape[2:])
    rule = receptive.transposed if transposed else receptive.window
    return x.shape[0] * positions * weight.numel(), _on_field(st, n, lambda f: rule(f, kernel, stride, padding, dilation))


def pool(st: State, x: Tensor, out: Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any, average: bool) -> Result:
    n = out.dim() - 2
    kernel = _tuple(kernel, n)
    stride = _tuple(stride or kernel, n)
    padding, dilation = _tuple(padding, n), _tuple(dilation, n)
    macs = out.numel() * math.prod(kernel) if average else 0
    return macs, _on_field(st, n, lambda f: receptive.window(f, kernel, stride, padding, dilation))


def adaptive_pool(st: State, x: Tensor, out: Tensor, average: bool) -> Result:
    n = out.dim() - 2
    state = _on_field(st, n, lambda f: receptive.adaptive(f, x.shape[2:], out.shape[2:]))
    return (x.numel() if average else 0), state


def interpolate(st: State, x: Tensor, out: Tensor, mode: str, align_corners: bool | None) -> Result:
    n = out.dim() - 2
    taps = {"nearest": 1, "nearest-exact": 1, "bicubic": 4}.get(mode, 2)
    macs = 0 if taps == 1 else out.numel() * taps**n
    return macs, _on_field(st, n, lambda f: receptive.resample(f, x.shape[2:], out.shape[2:], mode, align_corners))


def pad(st: State, x: Tensor, pads: Sequence[int]) -> Result:
    """Padding layers: a 1-wide window with left padding (``pads`` lists the LAST axis first)."""
    axes = st.axes if isinstance(st, Field) else 0
    left = [0] * axes
    for i in range(min(len(pads) // 2, axes)):
        left[axes - 1 - i] = pads[2 * i]
    ones = (1,) * axes
    return 0, _on_field(st, axes, lambda f: receptive.window(f, ones, ones, left, ones))


def flatten(st: State, x: Tensor, start: int, end: int) -> Result:
    """Merging a spatial axis with another dimension ends spatial structure: WHOLE."""
    start, end = start % x.dim(), end % x.dim()
    merges_space = end > start and any(start <= d <= end for d in _spatial(st, x.dim()))
    return 0, (WHOLE if merges_space else st)


def along(st: State, x: Tensor, dims: Any) -> State:
    """Softmax/reductions: along a spatial dimension every output sees the whole input."""
    if dims is None:
        return WHOLE if x.dim() > 1 or st == WHOLE else st
    dims = {d % x.dim() for d in _tuple(dims, 1)}
    return WHOLE if dims & set(_spatial(st, x.dim())) else st


def norm_macs(x: Tensor, affine: bool, batch: bool = False) -> int:
    if batch:  # inference BatchNorm: (x - mean) / std, then * gamma + beta
        return x.numel() * (2 if affine else 1)
    return x.numel() * (5 if affine else 4)


def linear_state(st: State) -> State:
    """A linear layer mixes its last axis: only meaningful once the field is already WHOLE."""
    return WHOLE if st == WHOLE else None


# --- modules ------------------------------------------------------------------------------------

ELEMENTWISE_MODULES = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign,
    nn.Tanhshrink, nn.Threshold, nn.LogSigmoid, nn.Hardshrink, nn.Softshrink,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.ChannelShuffle,
)


def weighted_module(m: nn.Module) -> bool:
    """Whether a module's MACs are weight multiply-adds (convolutions, linear layers): the papers' count."""
    return isinstance(m, (_ConvNd, LocallyConnected2d, nn.Linear))


def weighted_function(name: str) -> bool:
    """Whether a torch function's MACs are weight multiply-adds: ``conv1d..3d``, ``conv_transpose*``, ``linear``."""
    return name == "linear" or (name.startswith("conv") and name[-2:] in ("1d", "2d", "3d"))


def module_rule(m: nn.Module) -> Callable[[State, Tensor, Tensor], Result] | None:
    """The rule for a leaf module, or None when cnnlab has none (the layer is then analysed
    through the torch functions it calls, or reported as unknown)."""
    if isinstance(m, _ConvTransposeNd):
        return lambda st, x, out: conv(st, x, out, m.weight, m.kernel_size, m.stride, m.padding, m.dilation, True)
    if isinstance(m, _ConvNd):
        return lambda st, x, out: conv(st, x, out, m.weight, m.kernel_size, m.stride, m.padding, m.dilation)
    if isinstance(m, LocallyConnected2d):  # same MACs as the conv, one filter per position
        return lambda st, x, out: (out.numel() * m.in_channels * math.prod(m.kernel_size),
                                   conv(st, x, out, m.weight, m.kernel_size, m.stride, m.padding, m.dilation)[1])
    if isinstance(m, nn.Linear):
        return lambda st, x, out: (x.numel() * m.out_features, linear_state(st))
    if isinstance(m, _BatchNorm):
        return lambda st, x, out: (norm_macs(x, m.affine, batch=True), st)
    if isinstance(m, (nn.GroupNorm, _InstanceNorm)):
        return lambda st, x, out: (norm_macs(x, m.affine), st)
    if isinstance(m, nn.LayerNorm):
        return lambda st, x, out: (norm_macs(x, m.elementwise_affine), st)
    if isinstance(m, _MaxPoolNd):
        return lambda st, x, out: pool(st, x, out, m.kernel_size, m.stride, m.padding, m.dilation, False)
    if isinstance(m, _AvgPoolNd):
        return lambda st, x, out: pool(st, x, out, m.kernel_size, m.stride, m.padding, 1, True)
    if isinstance(m, (_AdaptiveAvgPoolNd, _AdaptiveMaxPoolNd)):
        return lambda st, x, out: adaptive_pool(st, x, out, isinstance(m, _AdaptiveAvgPoolNd))
    if isinstance(m, nn.Upsample):
        return lambda st, x, out: interpolate(st, x, out, m.mode, m.align_corners)
    if isinstance(m, nn.PixelShuffle):  # output pixel (h, w) reads input pixel (h//r, w//r)
        return lambda st, x, out: interpolate(st, x, out, "nearest", None)
    if isinstance(m, nn.PixelUnshuffle):  # an r x r block becomes r*r channels: a window
        return lambda st, x, out: pool(st, x, out, m.downscale_factor, None, 0, 1, False)
    if isinstance(m, (_ConstantPadNd, _ReflectionPadNd, _ReplicationPadNd, _CircularPadNd)):
        return lambda st, x, out: pad(st, x, m.padding)
    if isinstance(m, nn.Flatten):
        return lambda st, x, out: flatten(st, x, m.start_dim, m.end_dim)
    if isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.Softmin)):
        return lambda st, x, out: (0, along(st, x, m.dim))
    if isinstance(m, ELEMENTWISE_MODULES):
        return lambda st, x, out: (0, st)
    return None


# --- torch functions called between modules -----------------------------------------------------

ELEMENTWISE_FUNCTIONS = {
    "add", "sub", "mul", "div", "true_divide", "multiply", "subtract", "divide", "maximum", "minimum", "where",
    "radd", "rsub", "rmul", "truediv", "rtruediv", "iadd", "isub", "imul", "itruediv", "neg", "abs", "exp",
    "sqrt", "rsqrt", "pow", "clamp", "clip", "sigmoid", "tanh", "relu", "relu6", "hardtanh", "leaky_relu", "elu",
    "selu", "celu", "gelu", "silu", "mish", "hardswish", "hardsigmoid", "softplus", "prelu", "dropout", "dropout1d",
    "dropout2d", "dropout3d", "alpha_dropout", "feature_dropout", "feature_alpha_dropout", "channel_shuffle",
}
# data movement: no row unless it changes the spatial layout
MOVES = {
    "view", "reshape", "flatten", "contiguous", "transpose", "permute", "chunk", "split", "getitem", "squeeze",
    "unsqueeze", "narrow", "clone", "detach", "to", "float", "half", "double", "type_as", "expand", "expand_as",
    "unbind", "movedim", "get", "unflatten", "view_as", "reshape_as",
}


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _move(st: State, x: Tensor, outs: Sequence[Tensor]) -> tuple[State, bool]:
    """Reshapes keep the field while the spatial axes survive; collapsing them ends it (WHOLE)."""
    axes = st.axes if isinstance(st, Field) else 0
    if not isinstance(st, Field) or all(o.shape[o.dim() - axes:] == x.shape[x.dim() - axes:] for o in outs):
        return st, False
    if all(o.dim() <= 2 for o in outs):
        return WHOLE, True
    return None, True


def function_rule(name: str, args: tuple, kwargs: dict, st: State, x: Tensor, outs: Sequence[Tensor]
                  ) -> tuple[int | None, State, bool] | None:
    """``(macs, state, show_as_row)`` for a torch function, or None when cnnlab has no rule.

    ``st`` is the union of the traced inputs' fields and ``x`` the first traced input.
    """
    out = outs[0]
    if name in MOVES:
        state, row = _move(st, x, outs)
        return 0, state, row
    if name in ELEMENTWISE_FUNCTIONS:
        return 0, st, True
    if name in ("cat", "concat", "concatenate", "stack"):
        dim = _arg(args, kwargs, 1, "dim", 0) % (x.dim() + (name == "stack"))
        return 0, (None if name != "stack" and dim in _spatial(st, x.dim()) else st), True
    if name in ("mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp", "norm"):
        if name in ("max", "min") and isinstance(_arg(args, kwargs, 1, "other"), Tensor):
            return 0, st, True
        dims = _arg(args, kwargs, 1, "dim")
        return (x.numel() if name in ("mean", "sum") else 0), along(st, x, dims), True
    if name in ("softmax", "log_softmax", "softmin"):
        return 0, along(st, x, _arg(args, kwargs, 1, "dim")), True
    if name.startswith(("max_pool", "avg_pool")):
        average = name.startswith("avg")
        dilation = 1 if average else _arg(args, kwargs, 4, "dilation", 1)
        return (*pool(st, x, out, _arg(args, kwargs, 1, "kernel_size"), _arg(args, kwargs, 2, "stride"),
                      _arg(args, kwargs, 3, "padding", 0), dilation, average), True)
    if name.startswith(("adaptive_avg_pool", "adaptive_max_pool")):
        return (*adaptive_pool(st, x, out, "avg" in name), True)
    if name in ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear"):
        mode = {"upsample_nearest": "nearest", "upsample_bilinear": "bilinear"}.get(name) or _arg(args, kwargs, 3, "mode", "nearest")
        corners = True if name == "upsample_bilinear" else _arg(args, kwargs, 4, "align_corners")
        return (*interpolate(st, x, out, mode, corners), True)
    if name.startswith("conv") and name[-2:] in ("1d", "2d", "3d"):
        w = _arg(args, kwargs, 1, "weight")
        if name.startswith("conv_transpose"):
            rule = conv(st, x, out, w, w.shape[2:], _arg(args, kwargs, 3, "stride", 1), _arg(args, kwargs, 4, "padding", 0),
                        _arg(args, kwargs, 7, "dilation", 1), transposed=True)
        else:
            rule = conv(st, x, out, w, w.shape[2:], _arg(args, kwargs, 3, "stride", 1), _arg(args, kwargs, 4, "padding", 0),
                        _arg(args, kwargs, 5, "dilation", 1))
        return (*rule, True)
    if name == "linear":
        return x.numel() * _arg(args, kwargs, 1, "weight").shape[0], linear_state(st), True
    if name in ("matmul", "mm", "bmm"):
        a, b = args[0], args[1]
        return a.numel() * b.shape[-1], linear_state(st), True
    if name == "batch_norm":
        return norm_macs(x, _arg(args, kwargs, 3, "weight") is not None, batch=True), st, True
    if name in ("layer_norm", "group_norm", "instance_norm"):
        weight = _arg(args, kwargs, 3 if name == "instance_norm" else 2, "weight")
        return norm_macs(x, weight is not None), st, True
    if name == "pad":
        return (*pad(st, x, _arg(args, kwargs, 1, "pad")), True)
    return None
