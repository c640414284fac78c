"""Layer-by-layer summary of any model: output shape, parameters, MACs and receptive field.

One forward pass at batch size 1, in eval mode, watched two ways:

- forward hooks on every leaf module (Conv2d, BatchNorm2d, ReLU...) give the layers in execution
  order; a leaf with a counting rule (:mod:`cnnlab.analysis.rules`) is one row;
- a :class:`~torch.overrides.TorchFunctionMode` sees the torch functions called *between* modules:
  residual ``out += identity``, Inception's ``torch.cat``, MobileNet's ``F.adaptive_avg_pool2d``,
  ``torch.flatten``. Each becomes a row too, so multi-branch models are complete.

Every traced tensor carries the receptive field of its first unit (:mod:`cnnlab.analysis.receptive`);
a layer's field comes from its inputs' fields, so branches merge correctly. A leaf module without a
rule is analysed through the functions it calls; if one of those is unknown too, the layer is
reported as unknown (MACs ``None``), never counted as zero.
"""
from __future__ import annotations

import copy
import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cnnlab.analysis import rules
from cnnlab.analysis.receptive import WHOLE, Field, State, image, union
from cnnlab.core.errors import CnnlabError

CONVENTIONS = (
    "MACs: multiply-accumulates at batch 1 in eval mode; conv/linear count weight multiply-adds (bias ignored), "
    "BatchNorm 2 per element, Layer/GroupNorm 5, average pooling 1 per element read, bilinear 4 per output; "
    "max pooling, activations, add/mul/concat between branches are 0; FLOPs = 2 x MACs (fvcore's conventions)."
)
FIELD_NOTE = ("Receptive field (RF), jump (effective stride) and start (centre of the first unit's field; input "
              "pixel i sits at i) per axis, HxW when they differ; 'whole input' after a flatten or global pooling.")


@dataclass
class Layer:
    name: str
    type: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int  # counted at the module's first call only
    trainable: int
    macs: int | None  # None: unknown layer
    state: State
    weight_macs: int = 0  # the part of macs that is conv/linear weight multiply-adds (see Summary.weight_macs)


@dataclass
class Summary:
    input: tuple[int, ...]
    layers: list[Layer]
    params: int
    trainable_params: int
    activation_bytes: int  # every layer output kept for backprop, batch 1 (shared storage counted once)
    param_bytes: int  # parameters and buffers

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers if layer.macs is not None)

    @property
    def weight_macs(self) -> int:
        """Conv and linear multiply-adds only: the papers' FLOP columns and fvcore's conv + linear counts
        (``cnnlab models``, the labs' cost tables); :attr:`macs` adds norms, pooling and interpolation."""
        return sum(layer.weight_macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def unknown(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.macs is None]

    def field(self, layer: Layer) -> dict[str, list[float] | None]:
        """The JSON view of a layer's field: WHOLE is the input's size with no stride/start."""
        st, axes = layer.state, len(self.input) - 1
        if axes and st == WHOLE:
            return {"receptive_field": list(self.input[1:]), "stride": None, "start": None}
        if axes and isinstance(st, Field) and st.axes == axes:
            return {key: [_number(v) for v in values] for key, values in
                    (("receptive_field", st.size), ("stride", st.jump), ("start", st.start))}
        return {"receptive_field": None, "stride": None, "start": None}

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON interface (see docs/analysis.md)."""
        return {
            "input": list(self.input),
            "layers": [{"name": layer.name, "type": layer.type, "output_shape": list(layer.output_shape),
                        "params": layer.params, "macs": layer.macs, **self.field(layer)} for layer in self.layers],
            "total": {"params": self.params, "trainable_params": self.trainable_params, "macs": self.macs,
                      "flops": self.flops},
        }

    def format(self, fmt: str = "table") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        if fmt == "csv":
            return _csv(self)
        if fmt in ("table", "markdown"):
            return _table(self, markdown=fmt == "markdown")
        raise CnnlabError(f"--format {fmt!r}: expected table, json, csv or markdown")


# --- tracing ------------------------------------------------------------------------------------


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


class _Tracer(TorchFunctionMode):
    """Hooks + function mode; ``states`` maps a live tensor's id to its receptive-field state."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.states: dict[int, State] = {}
        self.alive: list[Tensor] = []  # keeps traced tensors alive so their ids stay unique
        self.outputs: list[Tensor] = []
        self.layers: list[Layer] = []
        self.stack: list[tuple[str, nn.Module, str]] = []  # running modules: name, module, kind
        self.known_depth = 0  # > 0 inside a leaf with a rule: its internals are not rows
        self.marks: list[int] = []  # first row of each running leaf without a rule
        self.first_leaf: tuple[str, nn.Module] | None = None
        self.seen: set[int] = set()
        self.busy = False
        self.handles = []
        for name, m in model.named_modules():
            leaf = next(m.children(), None) is None
            rule = rules.module_rule(m) if leaf else None
            kind = "known" if rule else ("unknown" if leaf else "container")
            self.handles.append(m.register_forward_pre_hook(self._pre(name, kind), with_kwargs=True))
            self.handles.append(m.register_forward_hook(self._post(rule), with_kwargs=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def tag(self, t: Tensor, state: State) -> None:
        self.states[id(t)] = state
        self.alive.append(t)

    def _traced(self, value: Any) -> list[tuple[Tensor, State]]:
        return [(t, self.states[id(t)]) for t in _tensors(value) if id(t) in self.states]

    def _row(self, name: str, kind: str, outs: list[Tensor], macs: int | None, state: State,
             module: nn.Module | None = None, weight_macs: int = 0) -> None:
        params = trainable = 0
        for p in (module.parameters(recurse=False) if module is not None else ()):
            if id(p) not in self.seen:
                self.seen.add(id(p))
                params += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        for o in outs:
            self.tag(o, state)
        self.outputs.extend(outs)
        shape = tuple(outs[0].shape[1:]) if outs else ()
        self.layers.append(Layer(name, kind, shape, params, trainable, macs, state, weight_macs))

    def _pre(self, name: str, kind: str):
        def hook(m: nn.Module, args: tuple, kwargs: dict) -> None:
            kind_now = "inner" if self.known_depth else kind
            self.stack.append((name, m, kind_now))
            if kind_now == "known":
                self.known_depth += 1
                self.first_leaf = self.first_leaf or (name, m)
            elif kind_now == "unknown":
                self.marks.append(len(self.layers))
        return hook

    def _post(self, rule):
        def hook(m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            name, _, kind = self.stack.pop()
            self.busy = True
            try:
                if kind == "known":
                    self.known_depth -= 1
                    self._module_row(name, m, rule, (args, kwargs), out)
                elif kind == "unknown":
                    self._merge(name, m, out)
            finally:
                self.busy = False
        return hook

    def _module_row(self, name: str, m: nn.Module, rule, inputs: Any, out: Any) -> None:
        outs, ins = list(_tensors(out)), self._traced(inputs)
        x = ins[0][0] if ins else next(_tensors(inputs), None)
        if not outs or x is None:
            self._row(name, type(m).__name__, outs, None, None, m)
            return
        macs, state = rule(union(s for _, s in ins) if ins else None, x, outs[0])
        self._row(name, type(m).__name__, outs, macs, state, m, macs if rules.weighted_module(m) else 0)

    def _merge(self, name: str, m: nn.Module, out: Any) -> None:
        """A leaf without a rule: one row made of the function rows recorded while it ran."""
        mark = self.marks.pop()
        inner = self.layers[mark:]
        del self.layers[mark:]
        outs = list(_tensors(out))
        known = bool(outs) and all(id(o) in self.states for o in outs) and all(r.macs is not None for r in inner)
        macs = sum(r.macs for r in inner) if known else None
        state = union(self.states[id(o)] for o in outs) if known else None
        self._row(name, type(m).__name__, outs, macs, state, m, sum(r.weight_macs for r in inner))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.busy or self.known_depth:
            return out
        ins = self._traced((args, kwargs))
        outs = list(_tensors(out)) if ins else []
        if outs:
            name = getattr(func, "__name__", type(func).__name__).strip("_")
            st = union(s for _, s in ins)
            rule = rules.function_rule(name, args, kwargs, st, ins[0][0], outs)
            macs, state, row = rule if rule is not None else (None, None, True)
            if row:
                owner = self.stack[-1][0] if self.stack else ""
                weight = macs if macs is not None and rules.weighted_function(name) else 0
                self._row(f"{owner}.{name}" if owner else name, f"{name}()", outs, macs, state, weight_macs=weight)
            else:
                for o in outs:
                    self.tag(o, state)
        return out


def summarize(model: nn.Module, input_size: Sequence[int], execute: bool = False) -> Summary:
    """Trace one forward of a ``1 x input_size`` random tensor (eval mode, no grad) and count everything.

    By default the forward runs on a weightless ``meta`` copy of the model (shapes only, no
    arithmetic: resnet50 takes a fraction of a second); models that cannot run on ``meta`` (an
    operator without a meta kernel, control flow on values) are then run for real.
    """
    input_size = tuple(int(v) for v in input_size)
    if not execute:
        shadow = _meta_copy(model)
        if shadow is not None:
            try:
                return _trace(shadow, input_size, torch.device("meta"))
            except Exception:  # noqa: BLE001 - whatever failed on meta is retried (and reported) for real
                pass
    first = next(model.parameters(), None)
    return _trace(model, input_size, first.device if first is not None else torch.device("cpu"))


def _meta_copy(model: nn.Module) -> nn.Module | None:
    """A deep copy whose parameters and buffers live on the meta device (nothing is copied)."""
    memo = {}
    for t in [*model.parameters(), *model.buffers()]:
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(empty, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else empty
    try:
        return copy.deepcopy(model, memo)
    except Exception:  # noqa: BLE001 - an attribute that cannot be copied: trace the model itself
        return None


def _trace(model: nn.Module, input_size: tuple[int, ...], device: torch.device) -> Summary:
    first = next(model.parameters(), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.randn(1, *input_size, dtype=dtype, device=device)
    training = [(m, m.training) for m in model.modules()]
    tracer = _Tracer(model)
    model.eval()
    try:
        with torch.no_grad(), tracer:
            tracer.tag(x, image(len(input_size) - 1))
            model(x)
    except CnnlabError:
        raise
    except Exception as exc:  # any failure inside the user's forward becomes one clear line
        raise CnnlabError(_failure(tracer, input_size, exc)) from exc
    finally:
        tracer.remove()
        for m, mode in training:
            m.train(mode)
    params = list(model.parameters())
    storages: dict[int, int] = {}  # in-place results and views share their base's memory
    for o in tracer.outputs:
        base = o._base if o._base is not None else o
        storages[id(base)] = max(storages.get(id(base), 0), base.numel() * base.element_size())
    return Summary(
        input=input_size,
        layers=tracer.layers,
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        activation_bytes=sum(storages.values()),
        param_bytes=sum(t.numel() * t.element_size() for t in [*params, *model.buffers()]),
    )


def _failure(tracer: _Tracer, input_size: tuple[int, ...], exc: Exception) -> str:
    shape = "x".join(map(str, (1, *input_size)))
    message = (str(exc).strip().splitlines() or [""])[0]
    if tracer.stack:
        name, m, _ = tracer.stack[-1]
        channels = getattr(m, "in_channels", None)
        if tracer.first_leaf is not None and tracer.first_leaf[1] is m and channels not in (None, input_size[0]):
            return (f"--input {','.join(map(str, input_size))}: the model's first layer {name or 'model'} "
                    f"({type(m).__name__}) expects {channels} input channels, got {input_size[0]}")
        where = f" in layer {name or 'model'} ({type(m).__name__})"
    else:
        where = ""
    return f"the forward pass failed{where} on a {shape} input: {type(exc).__name__}: {message}"


# --- formats ------------------------------------------------------------------------------------


def _number(v: float) -> float | int:
    return int(round(v)) if abs(v - round(v)) < 1e-9 else round(v, 3)


def _axes_text(values: list | None) -> str:
    if values is None:
        return "-"
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _field_text(s: Summary, layer: Layer) -> tuple[str, str, str]:
    if len(s.input) == 1:
        return "-", "-", "-"
    if layer.state == WHOLE:
        return "whole input", "-", "-"
    if layer.state is None:
        return "?", "?", "?"
    f = s.field(layer)
    return _axes_text(f["receptive_field"]), _axes_text(f["stride"]), _axes_text(f["start"])


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _table(s: Summary, markdown: bool) -> str:
    head = ["Layer", "Type", "Output", "Params", "MACs", "RF", "Jump", "Start"]
    rows = [[layer.name or "(model)", layer.type, "x".join(map(str, layer.output_shape)) or "scalar",
             f"{layer.params:,}", "?" if layer.macs is None else f"{layer.macs:,}", *_field_text(s, layer)]
            for layer in s.layers]
    in_rows = sum(layer.params for layer in s.layers)
    notes = [
        f"Input {'x'.join(map(str, s.input))} (batch 1). Params {s.params:,} (trainable {s.trainable_params:,}); "
        f"MACs {s.macs:,} ({_si(s.macs)}); FLOPs {_si(s.flops)} (= 2 x MACs).",
        f"Activation memory {_mib(s.activation_bytes)} (every layer output, batch 1); "
        f"parameter memory {_mib(s.param_bytes)} (parameters and buffers).",
        FIELD_NOTE,
        CONVENTIONS,
    ]
    if in_rows != s.params:
        notes.append(f"{s.params - in_rows:,} parameters are in no row: held by modules this forward did not call "
                     f"(e.g. auxiliary heads in eval mode) or by non-leaf modules; they are in the totals.")
    if s.unknown:
        names = ", ".join(f"{layer.name} ({layer.type})" for layer in s.unknown)
        notes.append(f"Unknown layers, NOT counted in the MACs total: {names}.")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in notes])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {3, 4}
    fmt = lambda r: "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
    rule = "-" * (sum(widths) + 2 * (len(head) - 1))
    return "\n".join([fmt(head), rule, *map(fmt, rows), rule, *notes])


def _csv(s: Summary) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = ["name", "type", "output_shape", "params", "macs", "receptive_field", "stride", "start"]
    writer.writerow(keys)
    for row in s.to_dict()["layers"]:
        writer.writerow(["" if row[k] is None else "x".join(map(str, row[k])) if isinstance(row[k], list) else row[k]
                         for k in keys])
    return buf.getvalue()

