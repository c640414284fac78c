"""Class activation maps: one base class; each method is only the few lines that weight the channels.

Every CAM is ``relu(sum_k w_k A_k)`` over the channels ``A_k`` of one layer, upsampled to the
image and scaled to [0, 1]; the methods differ only in how the channel weights ``w_k`` are found:

- Grad-CAM: the spatial mean of the target score's gradient (one backward pass).
- Grad-CAM++: gradients re-weighted pixel by pixel so several instances of a class all count.
- Score-CAM: no gradients; the score of the image masked by each (upsampled) channel.
- Shap-CAM: no gradients; each channel's Shapley value for the target score, the channels being
  players switched off (zeroed) at the layer, estimated from random channel orders.

Models take [0, 1] pixel images (normalization inside, see ``cnnlab.models.layers.Normalize``).
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import did_you_mean
from cnnlab.explain.shapley import sample_shapley

Targets = int | Sequence[int] | Tensor | None


def feature_layers(model: nn.Module, example: Tensor) -> dict[str, tuple[int, ...]]:
    """Named modules producing a spatial feature map (C x H x W, H*W > 1) on ``example``, in run order.

    Modules that run more than once per forward (a shared activation, say) are left out: a CAM
    on them would be ambiguous.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    calls: Counter = Counter()

    def recorder(name: str):
        def hook(module, inputs, out):
            calls[name] += 1
            if isinstance(out, Tensor) and out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1:
                shapes.pop(name, None)  # re-insert so the order is the order modules finish
                shapes[name] = tuple(out.shape[1:])
        return hook

    handles = [m.register_forward_hook(recorder(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return {n: s for n, s in shapes.items() if calls[n] == 1}


def resolve_layer(model: nn.Module, name: str | None, example: Tensor) -> tuple[str, nn.Module]:
    """The module called ``name``, or by default the last one producing a feature map (the last conv block)."""
    layers = feature_layers(model, example)
    if not layers:
        raise CnnlabError("the model has no layer producing a spatial feature map to explain")
    if name is None:
        name = list(layers)[-1]
    if name not in layers:
        hint = did_you_mean(name, layers, cutoff=0.5)
        shown = list(layers)[-12:]
        more = f" (last {len(shown)} of {len(layers)}; `cnnlab explain layers` shows all)" \
            if len(layers) > len(shown) else ""
        what = "does not exist" if name not in dict(model.named_modules()) else "does not output a feature map"
        raise CnnlabError(f"--layer {name!r} {what}.{hint} Valid layers{more}: {', '.join(shown)}")
    return name, dict(model.named_modules())[name]


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients for a while: the part of the network before the layer
    then runs like inference, and backward computes no weight gradients nobody asked for."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def hooked(layer: nn.Module, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Replace the layer's output by ``fn(output)`` during the block."""
    handle = layer.register_forward_hook(lambda module, inputs, out: fn(out))
    try:
        yield
    finally:
        handle.remove()


def scale_maps(maps: Tensor, size: Sequence[int]) -> Tensor:
    """``N x C x h x w`` maps -> bilinear upsampling to ``size`` -> each map min-max scaled to [0, 1]."""
    up = F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)
    lo = up.amin(dim=(-2, -1), keepdim=True)
    hi = up.amax(dim=(-2, -1), keepdim=True)
    return (up - lo) / (hi - lo).clamp_min(1e-7)


def as_targets(targets: Targets, n: int, device: torch.device) -> Tensor | None:
    if targets is None:
        return None
    t = torch.as_tensor(targets, dtype=torch.long, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise CnnlabError(f"got {t.numel()} targets for {n} images")
    return t


class BaseCAM:
    """``cam(images, targets=None) -> N x H x W`` maps in [0, 1] (targets default to the top-1 class)."""

    uses_gradients = True

    def __init__(self, model: nn.Module, layer: str | None = None, batch_size: int = 32) -> None:
        self.model = model.eval()
        self.layer_name = layer
        self.layer: nn.Module | None = None
        self.batch_size = batch_size

    def channel_weights(self, images: Tensor, acts: Tensor, grads: Tensor | None, targets: Tensor) -> Tensor:
        """``N x C`` channel weights: the only thing a method defines."""
        raise NotImplementedError

    def __call__(self, images: Tensor, targets: Targets = None) -> Tensor:
        device = next(self.model.parameters()).device
        images = images.to(device, torch.float32)
        if self.layer is None:
            self.layer_name, self.layer = resolve_layer(self.model, self.layer_name, images[:1])
        t = as_targets(targets, len(images), device)
        bs = self.batch_size
        return torch.cat([self.explain_batch(images[i:i + bs], None if t is None else t[i:i + bs])
                          for i in range(0, len(images), bs)])

    def explain_batch(self, images: Tensor, targets: Tensor | None) -> Tensor:
        acts, grads, targets = self.activations(images, targets)
        weights = self.channel_weights(images, acts, grads, targets)
        cam = F.relu(torch.einsum("nc,nchw->nhw", weights.to(acts.dtype), acts))
        return scale_maps(cam[:, None], images.shape[-2:])[:, 0]

    def activations(self, images: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        """One forward pass: the layer's activations, the target score's gradient w.r.t. them, the targets.

        The activations are detached into a fresh leaf inside the hook, so the backward pass stops
        at the layer instead of running through the whole network.
        """
        store: list[Tensor] = []

        def keep(out: Tensor) -> Tensor:
            store.append(out.detach().clone().requires_grad_(self.uses_gradients))
            return store[-1] * 1 if self.uses_gradients else out  # `* 1`: later in-place ops leave it intact

        with frozen(self.model), hooked(self.layer, keep), torch.set_grad_enabled(self.uses_gradients):
            logits = self.model(images)
        targets = logits.argmax(1) if targets is None else targets
        grads = None
        if self.uses_gradients:
            score = logits.gather(1, targets[:, None]).sum()  # images are independent: one backward for all
            grads = torch.autograd.grad(score, store[0])[0]
        return store[0].detach(), grads, targets


class GradCAM(BaseCAM):
    """Selvaraju et al. 2017: channel weight = spatially averaged gradient of the class score."""

    def channel_weights(self, images, acts, grads, targets):
        return grads.mean(dim=(2, 3))


class GradCAMPlusPlus(BaseCAM):
    """Chattopadhay et al. 2018 (eq. 19, exponential score): positive gradients weighted per pixel."""

    def channel_weights(self, images, acts, grads, targets):
        g2 = grads.pow(2)
        alpha = g2 / (2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * grads + 1e-6)
        return (alpha * F.relu(grads)).sum(dim=(2, 3))


class ScoreCAM(BaseCAM):
    """Wang et al. 2020: weight = target score of the image masked by the upsampled, [0, 1]-scaled channel
    (softmax over channels). One forward pass per channel: slow, but no gradients at all."""

    uses_gradients = False

    def channel_weights(self, images, acts, grads, targets):
        weights = []
        with torch.no_grad():
            for x, a, t in zip(images, acts, targets):
                # a constant channel (often all-zero after a ReLU) masks the image to black: score that once
                live = a.flatten(1).amax(1) > a.flatten(1).amin(1)
                scores = self.model(torch.zeros_like(x)[None])[0, t].repeat(len(a))
                if live.any():
                    scores[live] = torch.cat([self.model(x * scale_maps(chunk[:, None], x.shape[-2:]))[:, t]
                                              for chunk in a[live].split(self.batch_size)])
                weights.append(scores.softmax(0))
        return torch.stack(weights)


class ShapCAM(BaseCAM):
    """Shap-CAM (Zheng et al. 2022): channel weight = Shapley value of the channel for the target score.

    A coalition keeps its channels and zeroes the others at the layer; the network after the layer
    scores ``chunk`` coalitions per forward pass (the layer's output is broadcast to the coalition
    batch, so the part before the layer runs once per chunk). ``samples`` random channel orders give
    ``samples * (C + 1)`` evaluations; the orders are seeded, so a map changes only when the input does.
    """

    uses_gradients = False

    def __init__(self, model: nn.Module, layer: str | None = None, batch_size: int = 32,
                 samples: int = 16, chunk: int = 512, seed: int = 0) -> None:
        super().__init__(model, layer, batch_size)
        self.samples, self.chunk, self.seed = samples, chunk, seed

    def channel_weights(self, images, acts, grads, targets):
        phis = [sample_shapley(self.game(x, t), acts.shape[1], self.samples, torch.Generator().manual_seed(self.seed))
                for x, t in zip(images, targets)]
        return torch.stack(phis).float()

    def game(self, image: Tensor, target: Tensor) -> Callable[[Tensor], Tensor]:
        """v(coalition) = target logit with the channels outside the coalition zeroed at the layer."""

        def value(masks: Tensor) -> Tensor:
            out = []
            for m in masks.to(image.device).split(self.chunk):
                keep = m[:, :, None, None].float()
                try:
                    with torch.no_grad(), hooked(self.layer, lambda a: a * keep):
                        out.append(self.model(image[None])[:, target])
                except RuntimeError as exc:
                    raise CnnlabError(
                        f"Shap-CAM cannot mask layer {self.layer_name!r}: the network mixes its output with "
                        f"other tensors of the same block ({exc}); pick the output of a whole block") from exc
            return torch.cat(out)

        return value


METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "shapcam": ShapCAM,
}


def get_cam(method: str, model: nn.Module, layer: str | None = None, **kwargs) -> BaseCAM:
    """A CAM by name (``gradcam``, ``gradcam++``, ``scorecam``, ``shapcam``); ``kwargs`` go to its constructor."""
    key = method.lower().replace("-", "").replace("_", "")
    if key not in METHODS:
        raise CnnlabError(f"unknown CAM method {method!r}; expected one of {', '.join(METHODS)}")
    return METHODS[key](model, layer, **kwargs)
