"""Import every model family once so that the registry is complete.

Add one import per family module here.
"""
from cnnlab.models import classic, pretrained  # noqa: F401
