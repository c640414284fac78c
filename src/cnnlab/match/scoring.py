"""Scorers: how well one template fits every window of a search image, on pixels or on features.

Every scorer sees the search image as a ``C x H x W`` tensor (colour pixels or CNN features) and
templates as ``K x C x h x w``, and returns one map per template indexed by the window's top-left
cell: ``K x (H - h + 1) x (W - w + 1)``, higher is better.

- :func:`zncc`: zero-mean normalised cross-correlation (OpenCV's ``TM_CCOEFF_NORMED``; on colour,
  the per-channel means are removed and the channels summed, as OpenCV does). Invariant to
  ``a * x + b`` per channel, so brightness and contrast changes do not move the peak.
- :func:`qatm`: QATM's soft mutual nearest neighbour (Cheng et al., CVPR 2019). A search cell and a
  template cell match well when each is the other's best match among all cells, softly: the
  geometric mean of a softmax over the search cells and a softmax over the template cells. A
  window's score is the geometric mean of its cells' best quality, so a window full of features
  that are common everywhere (background) scores low.
- :func:`dim`: divisive input modulation (Spratling 2017; Deep-DIM, Gao & Spratling 2021). The
  template and a few look-alikes compete to explain the (non-negative) input: each iteration
  divides the input by its current reconstruction and re-weights every template's activation by
  how well it fits what is left unexplained, so a look-alike that explains a distractor suppresses
  the target template's response there ("explaining away").

Correlations run through the FFT when the template is large (cost ``C·H·W·log(H·W)`` instead of
``C·H·W·h·w``); window sums use integral images in float64 so the variance in the ZNCC denominator
does not lose precision.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# direct convolution beats the FFT only for tiny templates on a CPU (measured: 5x5 vs 7x7 cells)
_DIRECT_MAX_AREA = 36


def fft_length(n: int) -> int:
    """The smallest 5-smooth number >= n (only factors 2, 3, 5): lengths the FFT handles fastest."""
    m = max(n, 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def correlate(image: Tensor, kernels: Tensor, method: str = "auto") -> Tensor:
    """Valid cross-correlation summed over channels, one map per kernel.

    ``out[k, y, x] = sum_c sum_ij image[c, y + i, x + j] * kernels[k, c, i, j]``; ``method`` is
    ``"direct"`` (``conv2d``), ``"fft"`` or ``"auto"`` (FFT unless the kernel is tiny).
    """
    c, hh, ww = image.shape
    k, kc, h, w = kernels.shape
    if kc != c or h > hh or w > ww:
        raise ValueError(f"kernels {tuple(kernels.shape)} do not fit the image {tuple(image.shape)}")
    if method == "direct" or (method == "auto" and h * w <= _DIRECT_MAX_AREA):
        return F.conv2d(image[None], kernels)[0]
    n, m = fft_length(hh), fft_length(ww)
    # circular correlation equals the valid one wherever the window does not wrap: y <= hh - h
    spectrum = torch.einsum("chw,kchw->khw", torch.fft.rfft2(image, s=(n, m)),
                            torch.fft.rfft2(kernels, s=(n, m)).conj())
    return torch.fft.irfft2(spectrum, s=(n, m))[:, : hh - h + 1, : ww - w + 1]


def box_sum(x: Tensor, h: int, w: int) -> Tensor:
    """Sum of every ``h x w`` window of ``... x H x W`` (valid positions), in float64 via an integral image."""
    s = F.pad(x.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    return s[..., h:, w:] - s[..., :-h, w:] - s[..., h:, :-w] + s[..., :-h, :-w]


def zncc(image: Tensor, templates: Tensor, method: str = "auto") -> Tensor:
    """Zero-mean normalised cross-correlation of every template with every window, in [-1, 1].

    ``sum_c sum_p (T - mean_c T)(I - mean_c I_window) / sqrt(sum (T - mean T)^2 * sum (I - mean I_window)^2)``
    with means taken per channel: exactly OpenCV's ``TM_CCOEFF_NORMED`` on colour images. Windows
    with no variance (a flat patch) score 0.
    """
    h, w = templates.shape[-2:]
    t = templates - templates.mean(dim=(-2, -1), keepdim=True)
    # removing the image's global mean changes nothing (sum t = 0 per channel) but keeps the
    # float32 correlation accurate on images far from zero
    x = image - image.mean(dim=(-2, -1), keepdim=True)
    numerator = correlate(x, t, method).double()
    energy = box_sum((x * x).sum(0, keepdim=True), h, w)[0]
    window_var = energy.clone()
    for c in range(0, x.shape[0], 16):  # a few channels at a time: float64 sums are large
        s1 = box_sum(x[c:c + 16], h, w)
        window_var -= (s1 * s1).sum(0) / (h * w)
    window_var.clamp_(min=0)
    t_var = (t.double() ** 2).sum(dim=(1, 2, 3))
    denominator = (window_var[None] * t_var[:, None, None]).sqrt()
    tiny = 1e-7 * (energy.amax() * t_var.amax()).sqrt()  # below this the window is flat
    out = torch.where(denominator > tiny, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))
    return out.clamp(-1, 1).float()


def qatm(image: Tensor, template: Tensor, alpha: float = 25.0, chunk: int = 65536) -> Tensor:
    """QATM score map of one template: the geometric mean of each window's cell qualities.

    With cosine similarity ``s(i, j)`` between search cell ``i`` (of N) and template cell ``j`` (of M)::

        quality(i) = max_j sqrt(softmax_i(alpha * s)[i, j] * softmax_j(alpha * s)[i, j])

    The score is given relative to chance, ``sqrt(N * M)`` times the geometric mean (1 when all
    similarities are equal), so templates of different sizes get comparable scores.

    The softmax over all search cells needs, for each template cell, a log-sum-exp over the whole
    image; it is accumulated ``chunk`` search cells at a time, so memory stays at ``chunk x h*w``
    similarities however large the image (QATM's own code builds the full ``H*W x h*w`` tensor
    and runs out of memory on large images).
    """
    c, hh, ww = image.shape
    h, w = template.shape[-2:]
    search = F.normalize(image.reshape(c, -1).T, dim=1)  # N x C unit vectors
    cells = F.normalize(template.reshape(c, -1).T, dim=1)  # M x C
    # pass 1: log-sum-exp over every search cell, per template cell (softmax over the image)
    lse_search = torch.full((cells.shape[0],), -math.inf, device=image.device)
    for start in range(0, search.shape[0], chunk):
        logits = alpha * search[start:start + chunk] @ cells.T
        lse_search = torch.logaddexp(lse_search, logits.logsumexp(0))
    # pass 2: best log-quality per search cell
    log_quality = torch.empty(search.shape[0], device=image.device)
    for start in range(0, search.shape[0], chunk):
        logits = alpha * search[start:start + chunk] @ cells.T
        lse_template = logits.logsumexp(1, keepdim=True)
        log_quality[start:start + chunk] = (logits - 0.5 * lse_search - 0.5 * lse_template).amax(1)
    window_mean = box_sum(log_quality.reshape(1, hh, ww), h, w)[0] / (h * w)
    # relative to chance (every similarity equal: quality 1 / sqrt(N * M)), so the scores of
    # templates with different numbers of cells (a pyramid) can be compared
    return (window_mean + 0.5 * math.log(search.shape[0] * cells.shape[0])).exp().float()[None]


def fuse(maps: Sequence[Tensor]) -> Tensor:
    """Product fusion of non-negative score maps: their geometric mean, -inf where any map is -inf.

    A window must score well on every map to score well here, so the maps' failures must coincide to
    survive; the geometric mean (not the plain product) keeps fused maps on their inputs' scale, and
    its argmax does not change when one map is multiplied by a constant, so the maps need no common
    unit. Negative scores count as 0.
    """
    stacked = torch.stack(list(maps))
    fused = stacked.clamp_min(0).log().mean(0).exp()
    return torch.where(torch.isneginf(stacked).any(0), -math.inf, fused)


def on_off(features: Tensor) -> Tensor:
    """``C x ...`` -> ``2C x ...`` non-negative: positive parts then negative parts (DIM needs x >= 0)."""
    return torch.cat([features.clamp_min(0), (-features).clamp_min(0)])


def dim(image: Tensor, templates: Tensor, iterations: int = 10, eps: float = 1e-2,
        support: Tensor | None = None) -> Tensor:
    """Divisive input modulation: template activations after ``iterations`` rounds of explaining away.

    ``image`` is ``C x H x W`` (or a batch ``B x C x H x W`` of crops, zero-padded to one size) and
    ``templates`` ``K x C x h x w``, both non-negative (see :func:`on_off`), template 0 the target
    and the rest look-alikes. With feed-forward weights ``w_k = T_k / sum(T_k)`` and feedback
    weights ``v_k = T_k / max(T_k)``, starting from ``y = 0``::

        r = sum_k y_k (*) v_k            reconstruction of the input (convolution)
        e = x / max(eps, r)              what is not yet explained (>1) or over-explained (<1)
        y_k = max(eps1, y_k) * (e (x) w_k)   correlation: a template grows where its fit is unexplained

    Both operations are 'same'-size, zero outside the image, computed with the FFT. Returns the
    ``K x H x W`` activations (``B x K x H x W`` for a batch), each at the window's centre cell (odd
    ``h``, ``w`` put it exactly). A batch shares the templates' spectra, the costliest set-up, and
    turns the per-frequency products into matrix products; ``support`` (``B x 1 x H x W``, 1 inside
    each crop, 0 on the zeros that pad it to the batch's size) keeps activations off the padding, so
    every crop gets exactly the maps it would get alone.
    """
    x = image if image.dim() == 4 else image[None]
    _, c, hh, ww = x.shape
    k, kc, h, w = templates.shape
    if kc != c:
        raise ValueError(f"templates have {kc} channels, image {c}")
    a, b = (h - 1) // 2, (w - 1) // 2
    n, m = fft_length(hh + h), fft_length(ww + w)
    # v_k and w_k are T_k scaled: one spectrum of T serves both directions (the correlation is its conjugate)
    spectrum = torch.fft.rfft2(templates, s=(n, m)).flatten(-2).permute(2, 0, 1)  # F x K x C
    feedback = 1 / templates.amax(dim=(1, 2, 3)).clamp_min(1e-6)
    forward = 1 / templates.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    f_feedback = (spectrum * feedback[:, None]).transpose(1, 2).contiguous()  # F x C x K
    f_forward = (spectrum.conj() * forward[:, None]).contiguous()  # F x K x C
    eps1 = eps / (templates * feedback[:, None, None, None]).sum(dim=(0, 2, 3)).max().clamp_min(1e-6)
    y = x.new_zeros(x.shape[0], k, hh, ww)
    for step in range(iterations):
        if step == 0:
            error = x / eps
        else:
            recon = _from_frequency(torch.bmm(f_feedback, _per_frequency(torch.fft.rfft2(y, s=(n, m)))),
                                    (n, m)).roll((-a, -b), (-2, -1))[..., :hh, :ww]
            error = x / recon.clamp_min(eps)
        drive = _from_frequency(torch.bmm(f_forward, _per_frequency(torch.fft.rfft2(error, s=(n, m)))),
                                (n, m)).roll((a, b), (-2, -1))[..., :hh, :ww]
        y = (y.clamp_min(eps1) * drive).clamp_min(0)
        if support is not None:
            y = y * support
    return y if image.dim() == 4 else y[0]


def _per_frequency(spectrum: Tensor) -> Tensor:
    """``B x X x n x m'`` spectra -> ``n*m' x X x B``: frequencies first, for batched matmuls."""
    return spectrum.flatten(-2).permute(2, 1, 0).contiguous()  # strided operands send bmm to a slow per-matrix loop


def _from_frequency(batched: Tensor, size: tuple[int, int]) -> Tensor:
    """``n*m' x X x B`` (from :func:`_per_frequency` and a matmul) -> ``B x X x n x m`` real maps."""
    n, m = size
    return torch.fft.irfft2(batched.permute(2, 1, 0).reshape(batched.shape[2], batched.shape[1], n, m // 2 + 1), s=size)
