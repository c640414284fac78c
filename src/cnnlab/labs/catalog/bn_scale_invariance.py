"""000 Q1b: what scaling the weights of a convolution followed by BatchNorm does.

BN(conv(x; aW)) = BN(a·conv(x; W)) = BN(conv(x; W)) for a > 0 (batch statistics scale with a), so
the loss is the same function of W and of aW. Differentiating L(aW) = L(W) gives
dL/dW|_{aW} = (1/a) dL/dW|_W: a larger weight gets a smaller gradient. One SGD step of size lr
then turns the weight's direction by about lr·|g|/(a²|W|): the effective learning rate on the
direction is lr/a², which is why BN networks tolerate (and self-stabilise) large learning rates.
The identity is exact with eps = 0 (1e-30 here: PyTorch refuses 0); PyTorch's eps = 1e-5 breaks it once a²·Var(conv) nears eps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.core.text import markdown_table
from cnnlab.labs.frame import LabContext, LabResult, as_float, lab_data, register_lab

SCALES = (0.01, 0.1, 0.5, 2.0, 10.0, 100.0)
EXACT_EPS = 1e-30  # PyTorch refuses eps = 0 in training; in float64 this is 0 beside any variance here


class ConvBN(nn.Module):
    """conv -> BatchNorm (batch statistics) -> ReLU -> global average -> linear: the smallest BN classifier."""

    def __init__(self, in_chans: int, classes: int, eps: float, width: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width, eps=eps)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3)))


def _loss_and_grad(net: ConvBN, weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Output, loss, dL/dW of the conv and the gradients of every other parameter, at conv weight ``weight``."""
    w = weight.clone().requires_grad_(True)
    others = {k: v for k, v in net.named_parameters() if k != "conv.weight"}
    out = torch.func.functional_call(net, {**others, "conv.weight": w}, (x,))
    loss = F.cross_entropy(out, y)
    grad, *rest = torch.autograd.grad(loss, [w, *others.values()])
    return out.detach(), loss.item(), grad, torch.cat([g.flatten() for g in rest])


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = (a * b).sum() / (a.norm() * b.norm())
    return math.acos(float(cos.clamp(-1, 1)))


@register_lab("bn-scale-invariance", "000 Q1b",
              "Scaling a conv's weights before BatchNorm: output unchanged, gradient x1/a, direction step x1/a^2")
def run(ctx: LabContext) -> LabResult:
    data = lab_data(ctx, n_train=ctx.pick(64, 512), n_test=1)
    x = as_float(data.train, data.mean, data.std).double()
    y = data.train.labels
    lr = 0.1
    rows, numbers = [], {"scales": list(SCALES), "per_scale": []}
    for eps in (EXACT_EPS, 1e-5):
        torch.manual_seed(ctx.seed)
        net = ConvBN(data.in_chans, data.num_classes, eps).double().train()
        w = net.conv.weight.detach()
        out1, loss1, g1, rest1 = _loss_and_grad(net, w, x, y)
        for a in SCALES:
            out_a, loss_a, g_a, rest_a = _loss_and_grad(net, a * w, x, y)
            rate = float(g_a.norm() / (a * w).norm())  # radians the direction turns per unit of lr (small steps)
            row = {"eps": eps, "a": a,
                   "output_max_abs_diff": float((out_a - out1).abs().max()),
                   "grad_norm_ratio": float(g_a.norm() / g1.norm()),
                   "grad_identity_error": float((a * g_a - g1).abs().max() / g1.abs().max()),
                   "other_grads_rel_change": float((rest_a - rest1).abs().max() / rest1.abs().max()),
                   "direction_rate": rate,
                   "direction_rate_ratio": rate / float(g1.norm() / w.norm()),
                   "one_step_angle": _angle(a * w - lr * g_a, a * w),
                   "grad_dot_weight": float((g_a * w).sum() / (g_a.norm() * w.norm()))}
            numbers["per_scale"].append(row)
            rows.append([eps, a, row["output_max_abs_diff"], row["grad_norm_ratio"], 1 / a,
                         row["direction_rate_ratio"], 1 / a ** 2, row["one_step_angle"]])
    exact = [r for r in numbers["per_scale"] if r["eps"] == EXACT_EPS]
    numbers["exact"] = {
        "max_output_diff": max(r["output_max_abs_diff"] for r in exact),
        "max_grad_identity_error": max(r["grad_identity_error"] for r in exact),
        "max_direction_rate_error": max(abs(r["direction_rate_ratio"] * r["a"] ** 2 - 1) for r in exact),
        "max_cos_grad_weight": max(abs(r["grad_dot_weight"]) for r in exact),
        "max_other_grads_change": max(r["other_grads_rel_change"] for r in exact),
    }
    default = [r for r in numbers["per_scale"] if r["eps"] == 1e-5]
    worst = max(default, key=lambda r: r["output_max_abs_diff"])
    numbers["with_eps"] = {"worst_a": worst["a"], "worst_output_diff": worst["output_max_abs_diff"],
                           "worst_grad_identity_error": worst["grad_identity_error"]}
    log_a = torch.tensor([math.log(r["a"]) for r in exact])
    slope = lambda key: float(torch.linalg.lstsq(torch.stack([log_a, torch.ones_like(log_a)], 1),  # noqa: E731
                                                 torch.tensor([math.log(r[key]) for r in exact])[:, None]).solution[0])
    numbers["slopes"] = {"grad_norm": slope("grad_norm_ratio"), "direction_rate": slope("direction_rate_ratio")}

    result = LabResult(numbers, _figure(exact, default), settings={
        "data": data.info, "images": len(y), "model": "conv3x3(16) -> BatchNorm2d -> ReLU -> GAP -> linear",
        "dtype": "float64", "sgd_lr": lr, "scales": list(SCALES)},
        table=markdown_table(["BN eps", "a", "max |f(aW) - f(W)|", "|g(aW)|/|g(W)|", "1/a",
                              "direction rate ratio", "1/a^2", f"angle of one step, lr={lr}"], rows))
    ok = numbers["exact"]["max_output_diff"] < 1e-5 and numbers["exact"]["max_grad_identity_error"] < 1e-5
    result.conclude(("With eps ~ 0 the output is unchanged by the scale (largest difference {d:.1e}) and "
                     "a·dL/dW(aW) equals dL/dW(W) to {g:.1e}: " +
                     ("the identity holds to 1e-5." if ok else "the identity does NOT hold to 1e-5.")),
                    d="exact.max_output_diff", g="exact.max_grad_identity_error")
    result.conclude("The gradient norm falls as a^{s:.3f} (theory: a^-1) and the rate at which an SGD step turns "
                    "the weight direction as a^{t:.3f} (theory: a^-2, largest error {e:.1e}): the effective "
                    "learning rate on the direction is lr/|W|^2.",
                    s="slopes.grad_norm", t="slopes.direction_rate", e="exact.max_direction_rate_error")
    result.conclude("The gradients of the other parameters (BN scale and shift, the classifier) do not change "
                    "with a (largest relative change {o:.1e}): only the scaled weights see a different gradient.",
                    o="exact.max_other_grads_change")
    result.conclude("The gradient is orthogonal to the weights (largest |cos| {c:.1e}), so SGD can only "
                    "grow |W|, which shrinks the effective step: BatchNorm stabilises itself.",
                    c="exact.max_cos_grad_weight")
    result.conclude("With PyTorch's eps = 1e-5 the invariance breaks at a = {a:g} (output difference {d:.2e}): "
                    "eps matters once a^2·Var(conv output) is near eps.",
                    a="with_eps.worst_a", d="with_eps.worst_output_diff")
    return result


def _figure(exact: list[dict], default: list[dict]):
    import matplotlib.pyplot as plt

    a = [r["a"] for r in exact]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].loglog(a, [r["grad_norm_ratio"] for r in exact], "o-", label="measured |g(aW)| / |g(W)|")
    axes[0].loglog(a, [1 / v for v in a], "k--", label="1/a")
    axes[0].set_title("gradient norm vs weight scale")
    axes[1].loglog(a, [r["direction_rate_ratio"] for r in exact], "o-", label="turn of W's direction per unit lr")
    axes[1].loglog(a, [1 / v ** 2 for v in a], "k--", label="1/a^2")
    axes[1].set_title("effective step on the weight direction")
    for rows, label in ((exact, "eps = 1e-30 (~0)"), (default, "eps = 1e-5")):
        axes[2].loglog(a, [max(r["output_max_abs_diff"], 1e-18) for r in rows], "o-", label=label)
    axes[2].set_title("max |f(aW) - f(W)|")
    for ax in axes:
        ax.set_xlabel("scale a")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return fig
