"""Features for matching: chosen layers of a pretrained CNN, brought to one grid, normalised.

A :class:`FeatureNet` wraps a classifier on [0, 1] pixels (the offline EfficientNet-Lite0, a
torchvision model, or a cnnlab checkpoint: see :func:`cnnlab.runs.sources.load_model`) and
records the outputs of a few named layers in one forward pass, stopping after the deepest. Each
layer's map is resized to the grid of the finest layer (``stride`` input pixels per cell) and the
layers are concatenated: shallow layers localise, deep layers survive appearance changes.

Large images are processed in tiles (:meth:`FeatureNet.extract`): each tile carries a halo of
context as wide as the layers' receptive-field radius, and tile corners sit on multiples of the
deepest stride, so the cells kept from each tile are the cells the whole image would give. Peak
memory of the network is then that of one ``(tile + 2 * halo)``-pixel square, whatever the image
size; what is kept is the feature map itself, ``channels * (H / stride) * (W / stride)`` floats.

:class:`FeatureSpace` standardises every channel with the search image's statistics, weights each
layer by ``1 / sqrt(channels)`` (so a wide layer does not drown a narrow one), and optionally
projects onto the search image's leading principal components (with whitening if asked).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import did_you_mean

DEFAULT_BACKBONE = "efficientnet-lite0"
# stride 4, 8 and 16 block outputs of EfficientNet-Lite0: edges, parts, object-level shape
LITE0_LAYERS = ("_blocks.2", "_blocks.4", "_blocks.10")
# VGG conv1_2, conv4_1, conv4_4 (the layers Deep-DIM reports best on BBS)
VGG_LAYERS = ("features.3", "features.20", "features.26")
_PROBE = 256  # side of the image used to measure strides and receptive fields


class _Stop(Exception):
    """Raised by the deepest layer's hook: the rest of the network is not needed."""


@dataclass
class FeatureNet:
    """A backbone and the layers read from it; ``strides[i]`` input pixels per cell of ``layers[i]``."""

    model: nn.Module
    layers: list[str]
    strides: list[int]
    halo: int  # context, in input pixels, each side of a tile (a multiple of the deepest stride)
    in_chans: int
    name: str
    channels: list[int] = field(default_factory=list)

    @property
    def stride(self) -> int:
        """The grid every layer is resized to: the finest layer's."""
        return min(self.strides)

    @property
    def align(self) -> int:
        """Tiles and padding snap to this many pixels so every layer's cells line up."""
        return max(self.strides)

    def raw(self, image: Tensor) -> list[Tensor]:
        """The chosen layers' maps for one ``C x H x W`` image whose sides are multiples of :attr:`align`."""
        outputs: dict[str, Tensor] = {}
        modules = dict(self.model.named_modules())
        last = self.layers[-1]

        def keep(name: str):
            def hook(module, inputs, out):
                outputs[name] = out.detach().float()  # float32 even under a bf16 autocast
                if len(outputs) == len(self.layers):
                    raise _Stop
            return hook

        handles = [modules[n].register_forward_hook(keep(n)) for n in self.layers]
        try:
            with torch.no_grad():
                self.model(image[None])
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        if len(outputs) != len(self.layers):
            missing = [n for n in self.layers if n not in outputs]
            raise CnnlabError(f"layers {missing} did not run in the forward pass (last requested {last})")
        return [outputs[n][0] for n in self.layers]

    def extract(self, image: Tensor, tile: int = 1024) -> list[Tensor]:
        """Per-layer maps on the common grid (``ceil(H / stride) x ceil(W / stride)``), in tiles of ``tile`` pixels.

        The image is padded (edge replication) to a multiple of :attr:`align`; tiles and their
        halos are cut from the padded image, so tiled and untiled maps agree.
        """
        image = self._channels(image)
        _, h, w = image.shape
        a = self.align
        ph, pw = math.ceil(h / a) * a, math.ceil(w / a) * a
        padded = F.pad(image[None], (0, pw - w, 0, ph - h), mode="replicate")[0] if (ph, pw) != (h, w) else image
        tile = max(a, tile // a * a)
        if ph <= tile + 2 * self.halo and pw <= tile + 2 * self.halo:
            maps = self.raw(padded)
        else:
            maps = self._tiled(padded, tile)
        g = self.stride
        gh, gw = math.ceil(h / g), math.ceil(w / g)
        out = []
        for m, s in zip(maps, self.strides):
            if s != g:
                m = F.interpolate(m[None], scale_factor=s / g, mode="bilinear", align_corners=False)[0]
            out.append(m[:, :gh, :gw])
        return out

    def _tiled(self, padded: Tensor, tile: int) -> list[Tensor]:
        _, ph, pw = padded.shape
        maps: list[Tensor | None] = [None] * len(self.layers)
        for y0 in range(0, ph, tile):
            for x0 in range(0, pw, tile):
                y1, x1 = min(ph, y0 + tile), min(pw, x0 + tile)
                cy0, cx0 = max(0, y0 - self.halo), max(0, x0 - self.halo)
                cy1, cx1 = min(ph, y1 + self.halo), min(pw, x1 + self.halo)
                parts = self.raw(padded[:, cy0:cy1, cx0:cx1])
                for i, (part, s) in enumerate(zip(parts, self.strides)):
                    if maps[i] is None:
                        maps[i] = part.new_zeros(part.shape[0], ph // s, pw // s)
                    maps[i][:, y0 // s:y1 // s, x0 // s:x1 // s] = \
                        part[:, (y0 - cy0) // s:(y1 - cy0) // s, (x0 - cx0) // s:(x1 - cx0) // s]
        return maps  # type: ignore[return-value]

    def _channels(self, image: Tensor) -> Tensor:
        if self.in_chans == 1 and image.shape[0] == 3:
            return (image * image.new_tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
        if self.in_chans == 3 and image.shape[0] == 1:
            return image.expand(3, -1, -1)
        return image


def load_feature_net(backbone: str | None = None, checkpoint: str | None = None,
                     layers: list[str] | None = None, device: str = "cpu") -> FeatureNet:
    """The backbone (``efficientnet-lite0``, ``torchvision:<name>`` or a checkpoint) and its layers.

    Layer names are the module names ``cnnlab explain layers`` prints; any unique dotted
    suffix works (``_blocks.4`` for ``net.0.net._blocks.4``).
    """
    from cnnlab.explain.cam import feature_layers
    from cnnlab.runs.sources import DEFAULT_MODEL, load_model

    name = backbone or DEFAULT_BACKBONE
    if checkpoint is not None:
        if backbone is not None:
            raise CnnlabError("give --backbone or --checkpoint, not both")
        pc = load_model(None, checkpoint, device)
    elif name in (DEFAULT_BACKBONE, DEFAULT_MODEL) or name.startswith("torchvision:"):
        pc = load_model(DEFAULT_MODEL if name in (DEFAULT_BACKBONE, DEFAULT_MODEL) else name, None, device)
    else:
        raise CnnlabError(f"--backbone {name!r}: expected {DEFAULT_BACKBONE} (offline) or torchvision:<name> "
                          f"(e.g. torchvision:vgg19), or give --checkpoint")
    in_chans = pc.input_size[0]
    model = _folded(pc.model)
    # oneDNN's convolutions (depthwise ones above all) run faster channels-last, in bf16 about 2x
    model.to(memory_format=torch.channels_last)
    probe = torch.rand(1, in_chans, _PROBE, _PROBE, device=device)
    available = feature_layers(model, probe)
    if layers is None:
        layers = list(_default_layers(pc.name, available))
    full = [_resolve(n, available) for n in layers]
    order = list(available)
    full.sort(key=order.index)
    strides = [max(1, round(_PROBE / available[n][-1])) for n in full]
    net = FeatureNet(model, full, strides, 0, in_chans, pc.name, [available[n][0] for n in full])
    net.halo = _halo(net, device)
    return net


def _folded(model: nn.Module) -> nn.Module:
    """The network with its BatchNorms folded into the convolutions before them (the features only run
    in eval mode): Lite0's 49 BNs were 7% of a BBS pair's time on an AVX2 CPU. Unchanged where fx
    cannot trace the network (folding is only a speed-up)."""
    from cnnlab.analysis.fold import fold_batchnorm

    try:
        return fold_batchnorm(model)
    except CnnlabError:
        return model.eval()


def _default_layers(name: str, available: dict[str, tuple[int, ...]]) -> tuple[str, ...]:
    if name.startswith("efficientnet-lite0"):
        return LITE0_LAYERS
    if name.startswith("torchvision:vgg"):
        return VGG_LAYERS
    # otherwise the last layer at each of the three coarsest strides up to 16 (4, 8, 16 for most
    # ImageNet networks; 1, 2, 4 for a small two-block CNN)
    by_stride: dict[int, str] = {}
    for n, shape in available.items():
        if n != "normalize":
            by_stride[max(1, round(_PROBE / shape[-1]))] = n
    wanted = sorted(s for s in by_stride if s <= 16)[-3:] or sorted(by_stride)[:1]
    return tuple(by_stride[s] for s in wanted)


def _resolve(name: str, available: dict[str, tuple[int, ...]]) -> str:
    """A full layer name from a name or a unique dotted suffix of one; one clear line otherwise."""
    if name in available:
        return name
    hits = [n for n in available if n.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise CnnlabError(f"--layers {name!r} is ambiguous: {', '.join(hits[:5])}")
    hint = did_you_mean(name, [n.split(".", 3)[-1] for n in available])
    raise CnnlabError(f"--layers {name!r}: no such layer producing a feature map.{hint} "
                      f"`cnnlab explain layers` lists them")


def _halo(net: FeatureNet, device: str) -> int:
    """Receptive-field radius of the deepest layer, measured as the support of a centre cell's
    gradient, rounded up to the alignment: the context a tile needs for exact interior cells."""
    size = 2 * _PROBE
    x = torch.rand(1, net.in_chans, size, size, device=device, requires_grad=True)
    modules = dict(net.model.named_modules())
    captured: list[Tensor] = []
    handle = modules[net.layers[-1]].register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.enable_grad():
            try:
                net.model(x)
            except _Stop:
                pass
            out = captured[0]
            cy, cx = out.shape[-2] // 2, out.shape[-1] // 2
            out[0, :, cy, cx].abs().sum().backward()
    finally:
        handle.remove()
    support = x.grad[0].abs().sum(0) > 0
    rows = support.any(1).nonzero()
    cols = support.any(0).nonzero()
    centre = (size // 2, size // 2)
    radius = max(centre[0] - int(rows.min()), int(rows.max()) - centre[0],
                 centre[1] - int(cols.min()), int(cols.max()) - centre[1]) + net.align
    return math.ceil(radius / net.align) * net.align


@dataclass
class FeatureSpace:
    """Per-channel standardisation, per-layer ``1/sqrt(C)`` weights and optional PCA, fitted on one image."""

    mean: Tensor
    scale: Tensor
    basis: Tensor | None = None  # C x k principal axes (whitened when asked)

    @classmethod
    def fit(cls, maps: list[Tensor], components: int = 0, whiten: bool = False) -> "FeatureSpace":
        means, scales = [], []
        for m in maps:
            flat = m.reshape(m.shape[0], -1)
            means.append(flat.mean(1))
            scales.append(1 / (flat.std(1).clamp_min(1e-6) * math.sqrt(m.shape[0])))
        space = cls(torch.cat(means), torch.cat(scales))
        if components:
            z = space.apply(maps).reshape(len(space.mean), -1)
            cov = z @ z.T / z.shape[1]
            values, vectors = torch.linalg.eigh(cov.double())
            order = values.argsort(descending=True)[:components]
            basis = vectors[:, order]
            if whiten:
                basis = basis / values[order].clamp_min(1e-12).sqrt()
            space.basis = basis.to(z.dtype)
        return space

    def apply(self, maps: list[Tensor]) -> Tensor:
        """``C' x H x W`` features: the layers concatenated, standardised, weighted (and projected).

        With a projection the standardisation is folded into it, ``P^T (s * (x - m)) = (s P)^T x - (s P)^T m``:
        one matrix product per layer, and the layers are never copied into one tensor.
        """
        if self.basis is None:
            return (torch.cat(maps) - self.mean[:, None, None]) * self.scale[:, None, None]
        weights = self.basis * self.scale[:, None]  # C x k
        out = -(self.mean @ weights)[:, None]  # k x 1, broadcast over the cells
        start = 0
        for m in maps:
            c = m.shape[0]
            out = torch.addmm(out, weights[start:start + c].T, m.reshape(c, -1))
            start += c
        return out.reshape(-1, *maps[0].shape[-2:])
