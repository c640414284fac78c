"""A multilayer perceptron assembled from the hand-written layers in ``layers.py``.

``MLP([784, 128, 64, 10], "relu")`` is ``Dense -> ReLU -> Dense -> ReLU -> Dense`` followed by
softmax + cross-entropy. ``loss_and_grads`` is the whole of backpropagation: one forward pass
left to right, then each layer's backward formula applied right to left.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.scratch.layers import INITS, Dense, Layer, ReLU, Sigmoid, SoftmaxCrossEntropy, Tanh

ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU}
# the init that keeps signal variance steady for each activation (see layers.init_weights)
DEFAULT_INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "he"}


def check_architecture(hidden: Sequence[int], activation: str, init: str | None = None) -> None:
    """Reject what would otherwise fail deep inside NumPy with a shape error."""
    if any(int(h) != h or h <= 0 for h in hidden):
        raise CnnlabError(f"--hidden sizes must be positive integers, got {list(hidden)}")
    if activation not in ACTIVATIONS:
        raise CnnlabError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if init is not None and init not in INITS:
        raise CnnlabError(f"--init must be one of {', '.join(INITS)}, got {init!r}")


class MLP:
    """Dense layers with an activation between them; the last layer gives the class logits."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu", init: str | None = None,
                 seed: int = 0, dtype=np.float32):
        if len(sizes) < 2:
            raise CnnlabError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
        check_architecture(sizes, activation, init)
        rng = np.random.default_rng(seed)
        init = init or DEFAULT_INIT[activation]
        self.sizes, self.activation, self.init, self.dtype = list(sizes), activation, init, np.dtype(dtype)
        self.layers: list[Layer] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.layers += [Dense(n_in, n_out, init, rng, dtype), ACTIVATIONS[activation]()]
        self.layers.pop()  # no activation after the output layer: softmax lives in the loss
        self.layers[0].need_input_grad = False
        self.loss_fn = SoftmaxCrossEntropy()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Class logits for a batch ``x`` (``B x sizes[0]``)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def hidden_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """The output of every hidden activation for a batch ``x``, input side first (copies)."""
        outputs = []
        for layer in self.layers[:-1]:
            x = layer.forward(x)
            if not layer.params:  # an activation
                outputs.append(x.copy())
        return outputs

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Backpropagation: forward, loss, then each layer's backward in reverse order.

        Returns the mean loss and the logits; the gradients are left in each layer's ``grads``.
        """
        logits = self.forward(x)
        loss = self.loss_fn.forward(logits, y)
        g = self.loss_fn.backward()
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return loss, logits

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.loss_fn.forward(self.forward(x), y)

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, value, gradient)`` for every parameter tensor, e.g. ``("dense0.W", W, dW)``."""
        dense = [layer for layer in self.layers if layer.params]
        for i, layer in enumerate(dense):
            for key, value in layer.params.items():
                yield f"dense{i}.{key}", value, layer.grads[key]

    def state(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by name (for saving, or for comparing with the PyTorch twin)."""
        return {name: value.copy() for name, value, _ in self.named_parameters()}

    def num_parameters(self) -> int:
        return sum(value.size for _, value, _ in self.named_parameters())
