"""Models as names: ``create_model("resnet9", num_classes=10, in_chans=3)``.

The names below are imported on first use (:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free;
the registry imports every family (``families.py``) before its first lookup.
"""
from cnnlab.core.lazy import lazy_exports

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
__getattr__, __dir__ = lazy_exports(__name__, {name: "cnnlab.models.registry" for name in __all__})
