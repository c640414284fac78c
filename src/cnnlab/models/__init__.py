"""Models as names: ``create_model("resnet9", num_classes=10, in_chans=3)``.

The names below are imported on first use (:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free;
the registry imports every family (``families.py``) before its first lookup.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {"cnnlab.models.registry": ["create_model", "get_entry", "list_models", "register_model"],
         "cnnlab.models.pixel": ["pixel_wrap"]}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
