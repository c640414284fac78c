"""A multilayer perceptron assembled from the hand-written layers in ``layers.py``.

``MLP([784, 128, 64, 10], "relu")`` is ``Dense -> ReLU -> Dense -> ReLU -> Dense`` followed by
softmax + cross-entropy; forward and backpropagation are :class:`~cnnlab.scratch.network.Network`'s.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cnnlab.core.errors import CnnlabError
from cnnlab.scratch.layers import INITS, Dense, Identity, Layer, ReLU, Sigmoid, Tanh
from cnnlab.scratch.network import Network

ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "identity": Identity}
# the init that keeps signal variance steady for each activation (see layers.init_weights)
DEFAULT_INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "he", "identity": "xavier"}


def check_architecture(hidden: Sequence[int], activation: str, init: str | None = None) -> None:
    """Reject what would otherwise fail deep inside NumPy with a shape error."""
    if any(int(h) != h or h <= 0 for h in hidden):
        raise CnnlabError(f"--hidden sizes must be positive integers, got {list(hidden)}")
    if activation not in ACTIVATIONS:
        raise CnnlabError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if init is not None and init not in INITS:
        raise CnnlabError(f"--init must be one of {', '.join(INITS)}, got {init!r}")


class MLP(Network):
    """Dense layers with an activation between them; the last layer gives the class logits."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu", init: str | None = None,
                 seed: int = 0, dtype=np.float32):
        if len(sizes) < 2:
            raise CnnlabError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
        check_architecture(sizes, activation, init)
        rng = np.random.default_rng(seed)
        init = init or DEFAULT_INIT[activation]
        self.sizes, self.activation, self.init = list(sizes), activation, init
        layers: list[Layer] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [Dense(n_in, n_out, init, rng, dtype), ACTIVATIONS[activation]()]
        layers.pop()  # no activation after the output layer: softmax lives in the loss
        super().__init__(layers, dtype)

    def hidden_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """The output of every hidden activation for a batch ``x``, input side first (copies)."""
        outputs = []
        for layer in self.layers[:-1]:
            x = layer.forward(x)
            if not layer.params:  # an activation
                outputs.append(x.copy())
        return outputs
