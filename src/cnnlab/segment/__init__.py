"""Semantic segmentation: U-Net family models, paired image/mask data, losses, whole-set metrics.

``train_segmenter`` / ``evaluate_segmenter`` / ``predict_masks`` (in ``cnnlab.segment.api``) are
what ``cnnlab segment train|evaluate|predict`` call (a run goes through ``cnnlab.runs.lifecycle``);
``load_segmenter`` (``cnnlab.runs.restore``) rebuilds a trained model from its checkpoint;
``cnnlab.segment.recipes`` holds what a run uses for the options left out;
``cnnlab.segment.inference`` turns a trained model into masks (sliding windows, flip TTA, the
decision threshold). The models register as ``unet``, ``resunet``, ``mobilenetv2-unet`` and
``efficientnet-lite0-unet``. The names below are imported on first use (:mod:`cnnlab.core.lazy`),
so the CLI's parser stays torch-free.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {"cnnlab.segment.api": ["evaluate_segmenter", "predict_masks", "segment_image", "train_segmenter"],
         "cnnlab.segment.recipes": ["RECIPES", "SEG_DEFAULTS", "recipe"],
         "cnnlab.runs.restore": ["load_segmenter"]}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
