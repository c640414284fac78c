"""Import every model family once so that the registry is complete.

Add one import per family module here; ``cnnlab.models`` imports this module.
"""
from cnnlab.models import classic, pretrained  # noqa: F401
from cnnlab.models import resnet  # noqa: F401
from cnnlab.models import inception  # noqa: F401
from cnnlab.models import inception_v3, inception_v4  # noqa: F401
from cnnlab.models import mobilenet  # noqa: F401
from cnnlab.models import efficientnet  # noqa: F401
from cnnlab.models import dilated  # noqa: F401
from cnnlab.models import local  # noqa: F401
from cnnlab.models import efficientnet_unet, mobilenet_unet, unet  # noqa: F401
