"""Train a new head on a frozen trunk's features, computed once (``--cache-features``).

Transfer learning by feature extraction (001 Sec.3d: Keras' ``trainable = False``) runs a frozen
ImageNet trunk on every image in every epoch, and with no augmentation it returns the same
features each time: all but the first pass is wasted work. EfficientNet-Lite0 at 224 px costs tens
of milliseconds an image on a CPU core and the new head next to nothing, so the trunk runs once
here, in eval mode (its BatchNorm keeps ImageNet's statistics, as Keras' frozen layers do), and
every epoch trains the head on the stored features: ten epochs cost about one.

The checkpoint is still the whole model (trunk + head): evaluate, predict and export read images
as for any run. Only the run's own loaders carry features; a fine-tuning phase after the frozen
one (``--finetune-epochs``) trains on images again.
"""
from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from cnnlab.core.errors import CnnlabError
from cnnlab.data.tensor_loader import StreamingLoader, TensorLoader
from cnnlab.models.pretrained import TransferNet
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import autocast

log = logging.getLogger(__name__)


class FeatureLoader(TensorLoader):
    """:class:`TensorLoader` over stored features (N x channels): the same seeded order, resumable
    state and sharding, and no augmentation or normalisation (the features are the trunk's output)."""

    def __init__(self, features: Tensor, labels: Tensor, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0) -> None:
        data = SimpleNamespace(images=features, labels=labels)
        super().__init__(data, batch_size, mean=(0.0,), std=(1.0,), shuffle=shuffle, device=features.device,
                         seed=seed, dtype=features.dtype)

    def _resident(self, data) -> Tensor:
        return data.images

    def transform(self, images: Tensor, hflip: Tensor | None = None) -> Tensor:
        return images

    def sample(self, n: int) -> Tensor:
        return self.images[:n]


def check_cacheable(model: nn.Module, opts: dict) -> TransferNet:
    """The run's model, if its features can be computed once: a frozen pretrained trunk, unaugmented
    images. Anything else is refused by name, before the features are computed or anything is trained."""
    if not isinstance(model, TransferNet) or not model.cacheable():
        raise CnnlabError(f"--cache-features: model {opts['model']!r} has no frozen pretrained trunk; it needs "
                          f"--model transfer:NAME with --model-kwargs '{{\"freeze\": true}}'")
    if opts["augment"] != "none" or opts["vflip"]:
        raise CnnlabError(f"--cache-features computes each image's features once, so the training images must be the "
                          f"same every epoch; this run augments them (--augment {opts['augment']}"
                          f"{' --vflip' if opts['vflip'] else ''}): give --augment none")
    return model


@torch.no_grad()
def trunk_features(model: TransferNet, loader: TensorLoader, cfg: TrainConfig, what: str = "images",
                   batch_size: int = 32) -> Tensor:
    """``model.frozen`` of every image of ``loader`` in its stored order (float32, on the loader's device):
    pooled features, or the frozen blocks' maps when the trunk's last blocks train (``train_last``)."""
    if isinstance(loader, StreamingLoader):
        raise CnnlabError("--cache-features needs the images in memory; this dataset streams from its files")
    device = cfg.resolved_device()
    was_training = model.training
    model.eval().to(device, memory_format=torch.channels_last)  # the 224-px trunk: oneDNN's fast layout
    parts, start_time = [], time.perf_counter()
    for start in tqdm(range(0, len(loader.images), batch_size), desc=f"trunk features ({what})", unit="batch",
                      leave=False, disable=None):
        x = loader.transform(loader.images[start:start + batch_size]).to(device)
        with autocast(device, cfg.amp, cfg.cpu_amp):
            # maps stored NCHW: the training loop gives them the layout its run asks for (--no-channels-last)
            parts.append(model.frozen(x.contiguous(memory_format=torch.channels_last)).float().contiguous())
    model.train(was_training)
    if not cfg.channels_last:  # back to NCHW weights for a run that trains in NCHW
        model.to(memory_format=torch.contiguous_format)
    # a line in the log even when the bar is off (piped output): the trunk pass is most of a cached run
    log.info("trunk features (%s): %d images in %.1f s", what, len(loader.images), time.perf_counter() - start_time)
    return torch.cat(parts)


def cached_loaders(model: TransferNet, loaders: tuple, cfg: TrainConfig) -> tuple:
    """(train, val, test) loaders of images -> the same splits as :class:`FeatureLoader`s."""
    train, val, test = loaders

    def cached(loader, what: str, **kwargs):
        if loader is None:
            return None
        return FeatureLoader(trunk_features(model, loader, cfg, what), loader.labels, loader.batch_size, **kwargs)

    return (cached(train, "train", shuffle=True, seed=cfg.seed), cached(val, "val"), cached(test, "test"))
