"""Class-model visualization: what input does the network score highest for a class?

Simonyan et al. 2014 maximise the class score ``S_c(x)`` over the image by gradient ascent from
noise. Plain ascent finds high-frequency patterns that no camera would produce, so the
regularizers of Yosinski et al. 2015 keep the image natural-looking:

- L2 decay pulls pixels back toward mid-grey (the image of zero in normalized space),
- jitter shifts the image by a few random pixels each step, so no single pixel alignment pays off,
- a Gaussian blur every few steps removes the high frequencies the ascent keeps adding.

Steps use the gradient divided by its mean magnitude, so ``lr`` is roughly "pixel change per
step" whatever the scale of the model's logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torchvision.transforms.functional as TF
from torch import Tensor, nn

from cnnlab.core import bounds
from cnnlab.core.errors import CnnlabError
from cnnlab.explain.cam import frozen


@dataclass
class ClassModel:
    image: Tensor  # C x H x W in [0, 1]
    target: int
    scores: list[float] = field(default_factory=list)  # class logit at each step
    probs: list[float] = field(default_factory=list)  # softmax probability at each step


def class_model(model: nn.Module, target: int, input_size: tuple[int, int, int], steps: int = 200,
                lr: float = 0.05, l2: float = 0.01, jitter: int = 8, blur_every: int = 4, blur_sigma: float = 0.5,
                seed: int = 0) -> ClassModel:
    """Gradient ascent on the input for ``target``'s score, from grey noise; returns image and trajectory."""
    if steps < 1 or lr <= 0 or l2 < 0 or jitter < 0 or blur_sigma < 0:
        raise CnnlabError(f"need steps >= 1, lr > 0, l2 >= 0, jitter >= 0, blur sigma >= 0 "
                          f"(got {steps}, {lr}, {l2}, {jitter}, {blur_sigma})")
    side = min(input_size[1:])
    if blur_every and blur_sigma > 0 and bounds.blur_kernel(blur_sigma) // 2 >= side:
        # the blur pads by reflection, half its kernel each way: no more than the image holds
        raise CnnlabError(f"--blur-sigma {blur_sigma:g}: its Gaussian kernel of {bounds.blur_kernel(blur_sigma)} "
                          f"pixels is wider than the {'x'.join(map(str, input_size[1:]))} image it blurs "
                          f"(at most {(side - 1) / 3:.3g} here)")
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.1 * torch.randn(1, *input_size, generator=g)).clamp(0, 1).to(device)
    result = ClassModel(x[0], target)
    kernel = bounds.blur_kernel(blur_sigma)
    with frozen(model):
        for step in range(steps + 1):
            dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist() if jitter and step < steps else (0, 0))
            x.requires_grad_(True)
            logits = model(torch.roll(x, shifts=(dy, dx), dims=(-2, -1)))
            result.scores.append(logits[0, target].item())
            result.probs.append(logits[0].detach().softmax(0)[target].item())
            if step == steps:  # the last pass only measures the final image
                break
            (grad,) = torch.autograd.grad(logits[0, target], x)
            with torch.no_grad():
                x = x + lr * grad / grad.abs().mean().clamp_min(1e-12)
                x = x - l2 * (x - 0.5)
                if blur_every and blur_sigma > 0 and (step + 1) % blur_every == 0:
                    x = TF.gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma])
                x = x.clamp(0, 1)
    result.image = x.detach()[0]
    return result
