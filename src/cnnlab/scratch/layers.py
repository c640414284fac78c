"""The layers of an MLP, each a forward formula and its hand-derived backward formula.

Conventions (so the code reads like the math): a batch is a row matrix ``x`` of shape
``B x n_in``; a dense layer computes ``z = x W + b`` with ``W`` of shape ``n_in x n_out``; every
``backward(g)`` receives ``g = dL/d(output)`` and returns ``dL/d(input)``, storing ``dL/dW`` in
``grads`` under the same key as the parameter. No autograd anywhere: every derivative below is
written out, and ``gradcheck.py`` proves each one against finite differences.

Speed without hiding the math: activations overwrite their input (the dense output is not needed
again: the dense backward needs its *input*), and gradients are written into preallocated arrays
with ``out=``. That keeps a training step at a handful of BLAS calls and no large temporaries.
"""
from __future__ import annotations

import numpy as np

INITS = ("xavier", "he", "normal", "unit-normal", "zero")


def init_weights(n_in: int, n_out: int, scheme: str, rng: np.random.Generator, dtype) -> np.ndarray:
    """Initial ``W`` (``n_in x n_out``).

    Why the scales: Xavier/Glorot keeps the variance of activations and gradients equal across
    layers for tanh/sigmoid-like units (``U(±sqrt(6/(n_in+n_out)))``); He doubles the fan-in
    variance (``N(0, 2/n_in)``) because a ReLU zeroes half its inputs; ``normal`` is the naive
    ``N(0, 0.01²)`` (signals shrink layer by layer); ``unit-normal`` is ``N(0, 1)`` (pre-activations
    of variance ``n_in``: a sigmoid saturates, a ReLU net explodes); ``zero`` makes every hidden unit identical,
    so they get identical gradients and never become different (the symmetry problem).
    """
    if scheme == "xavier":
        limit = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-limit, limit, size=(n_in, n_out))
    elif scheme == "he":
        w = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
    elif scheme == "normal":
        w = rng.standard_normal((n_in, n_out)) * 0.01
    elif scheme == "unit-normal":
        w = rng.standard_normal((n_in, n_out))
    elif scheme == "zero":
        w = np.zeros((n_in, n_out))
    else:
        raise ValueError(f"unknown init {scheme!r}; known: {', '.join(INITS)}")
    return w.astype(dtype)


class Layer:
    """A step of the network: ``forward`` caches what ``backward`` will need."""

    params: dict[str, np.ndarray] = {}
    grads: dict[str, np.ndarray] = {}
    kind = ""  # layers with parameters name them "<kind><index>.<key>" (dense0.W, conv1.b)

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Dense(Layer):
    """Affine map ``z = x W + b``.

    Backward (chain rule on ``z_ij = sum_k x_ik W_kj + b_j``):
    ``dL/dW = xᵀ g``, ``dL/db = sum over the batch of g``, ``dL/dx = g Wᵀ``.
    """

    kind = "dense"

    def __init__(self, n_in: int, n_out: int, init: str, rng: np.random.Generator, dtype=np.float32):
        self.params = {"W": init_weights(n_in, n_out, init, rng, dtype), "b": np.zeros(n_out, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.need_input_grad = True  # the first layer can skip dL/dx (nobody uses the pixel gradient)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        z = x @ self.params["W"]
        z += self.params["b"]
        return z

    def backward(self, g: np.ndarray) -> np.ndarray | None:
        np.matmul(self.x.T, g, out=self.grads["W"])
        np.sum(g, axis=0, out=self.grads["b"])
        return g @ self.params["W"].T if self.need_input_grad else None


class Sigmoid(Layer):
    """``s(z) = 1 / (1 + e^-z)``, with ``s'(z) = s(z) (1 - s(z))``.

    Computed as ``(1 + tanh(z/2)) / 2`` (the same function): it never overflows for large ``|z|``,
    unlike ``exp(-z)``, and is one ufunc call.
    """

    def forward(self, z: np.ndarray) -> np.ndarray:
        z *= 0.5
        np.tanh(z, out=z)
        z *= 0.5
        z += 0.5
        self.s = z
        return z

    def backward(self, g: np.ndarray) -> np.ndarray:
        g *= self.s
        g *= 1.0 - self.s
        return g


class Tanh(Layer):
    """``tanh(z)``, with ``tanh'(z) = 1 - tanh(z)²`` (at most 1, at z = 0; a sigmoid's is at most 1/4)."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        np.tanh(z, out=z)
        self.t = z
        return z

    def backward(self, g: np.ndarray) -> np.ndarray:
        g *= 1.0 - self.t * self.t
        return g


class ReLU(Layer):
    """``relu(z) = max(z, 0)``; its derivative is 1 where the output is positive, else 0."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        np.maximum(z, 0, out=z)
        self.out = z
        return z

    def backward(self, g: np.ndarray) -> np.ndarray:
        g *= self.out > 0
        return g


class Identity(Layer):
    """``id(z) = z``, derivative 1: the gradient passes unchanged (002 Q4b's linear hidden layer).

    A network of dense layers with identity activations is one affine map (``W1 W2`` is a single
    matrix): with a softmax output it is multinomial logistic regression, however many layers.
    """

    def forward(self, z: np.ndarray) -> np.ndarray:
        return z

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


class SoftmaxCrossEntropy:
    """Softmax and the mean cross-entropy fused into one numerically stable step.

    ``log p = z - logsumexp(z)`` after subtracting the row max (so ``exp`` never overflows), and
    the fused derivative is simply ``dL/dz = (p - onehot(y)) / B``: no division by ``p``, so no
    ``0/0`` when a probability underflows.
    """

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        z = logits - logits.max(axis=1, keepdims=True)
        ez = np.exp(z)
        sum_ez = ez.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        self.p, self.y, self.rows = ez / sum_ez, y, rows
        return float(np.log(sum_ez).sum() - z[rows, y].sum()) / len(y)

    def backward(self) -> np.ndarray:
        g = self.p  # reused in place: p is not needed after this
        g[self.rows, self.y] -= 1.0
        g /= len(self.y)
        return g
