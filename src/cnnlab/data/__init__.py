"""Datasets as names: ``load_dataset("fashion-mnist", data_dir)`` -> uint8 tensors + seeded splits.

The names below are imported on first use (:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free;
the registry imports the built-in datasets (``builtin.py``, ``segmentation.py``) before its first lookup.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {"cnnlab.data.base": ["DatasetSplits", "ImageSet", "channel_stats", "data_root", "seeded_split"],
         "cnnlab.data.images": ["load_image", "load_images", "to_rgb"],
         "cnnlab.data.registry": ["list_datasets", "load_dataset", "register_dataset"]}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
