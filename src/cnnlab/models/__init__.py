"""Models as names: ``create_model("resnet9", num_classes=10, in_chans=3)``."""
from cnnlab.models.registry import create_model, get_entry, list_models, register_model
from cnnlab.models import families  # noqa: F401,E402  (registers every family; after the registry)

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
