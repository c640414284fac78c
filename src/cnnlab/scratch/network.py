"""A network as a list of hand-written layers followed by softmax + cross-entropy.

The MLP (``mlp.py``) and the CNN (``cnn.py``) differ only in the layers they stack; forward,
backpropagation, parameter naming and the PyTorch twin (``twin.py``) treat every stack alike.
``loss_and_grads`` is the whole of backpropagation: one forward pass left to right, then each
layer's backward formula applied right to left.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from cnnlab.scratch.layers import Layer, SoftmaxCrossEntropy


class Network:
    """``layers`` applied in order; the last one gives the class logits (softmax lives in the loss)."""

    def __init__(self, layers: list[Layer], dtype=np.float32):
        self.layers, self.dtype = layers, np.dtype(dtype)
        self.loss_fn = SoftmaxCrossEntropy()
        first = next((layer for layer in layers if layer.params), None)
        if first is not None:
            first.need_input_grad = False  # nobody uses the gradient with respect to the pixels

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Class logits for a batch ``x`` (rows for an MLP, ``B x H x W x C`` images for a CNN)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Backpropagation: forward, loss, then each layer's backward in reverse order.

        Returns the mean loss and the logits; the gradients are left in each layer's ``grads``.
        """
        logits = self.forward(x)
        loss = self.loss_fn.forward(logits, y)
        g = self.loss_fn.backward()
        for layer in reversed(self.layers):
            g = layer.backward(g)
            if g is None:  # the first layer with parameters skips dL/d(pixels): nothing further down
                break
        return loss, logits

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return self.loss_fn.forward(self.forward(x), y)

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, value, gradient)`` for every parameter tensor, e.g. ``("conv1.W", W, dW)``.

        Layers are numbered per kind in order (``conv0``, ``conv1``, ``dense0``...), the same
        names :func:`cnnlab.scratch.twin.twin_state` gives the PyTorch twin's tensors.
        """
        counts: dict[str, int] = {}
        for layer in self.layers:
            if layer.params:
                i = counts[layer.kind] = counts.get(layer.kind, -1) + 1
                for key, value in layer.params.items():
                    yield f"{layer.kind}{i}.{key}", value, layer.grads[key]

    def state(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by name (for saving, or for comparing with the PyTorch twin)."""
        return {name: value.copy() for name, value, _ in self.named_parameters()}

    def num_parameters(self) -> int:
        return sum(value.size for _, value, _ in self.named_parameters())
