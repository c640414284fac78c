"""cnnlab: the practical work of a course on convolutional networks as tested, reusable tools.

Import the capability you need (``cnnlab.models``, ``cnnlab.data``, ``cnnlab.train``...);
the CLI (``cnnlab <command>``) is a thin layer over the same functions.
"""

__version__ = "0.1.0"
