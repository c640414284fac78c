"""Datasets as names: ``load_dataset("fashion-mnist", data_dir)`` -> uint8 tensors + seeded splits."""
from cnnlab.data.base import DatasetSplits, ImageSet, channel_stats, data_root, seeded_split
from cnnlab.data.registry import list_datasets, load_dataset, register_dataset
from cnnlab.data import loaders  # noqa: F401,E402  (registers the built-in datasets)

__all__ = ["DatasetSplits", "ImageSet", "channel_stats", "data_root", "seeded_split",
           "list_datasets", "load_dataset", "register_dataset"]
