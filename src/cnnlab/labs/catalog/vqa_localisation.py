"""003 Q2d: where in the image does a question point, for visual question answering?

The smallest honest experiment: generated 32x32 scenes of two or three coloured shapes (a square, a
circle, a triangle; each kind at most once per scene, each shape its own colour out of six), and the
question "what colour is the <shape>?" (the question is the shape's kind, the answer its colour). A
small CNN answers it; the question conditions every conv block by FiLM (Perez et al. 2018): a learned
linear embedding of the question gives each channel a scale ``gamma = 1 + dgamma`` and a shift
``beta`` applied after the BatchNorm, before the ReLU. The question travels as extra constant input
planes (one per kind, one-hot), so the network is an ordinary ``model(x)`` that the project's own
Grad-CAM (:mod:`cnnlab.explain.cam`) explains unchanged.

On held-out scenes, every shape of every scene is asked about. The Grad-CAM of the answer's logit at
the last conv block is scored by its *hit rate*: the share of questions whose map peaks inside the
asked shape's box. Against it, on the same images and questions:

- the same trained network with the question averaged (all planes 1/3: the mean of the three
  question embeddings, no question in particular), explaining its own top-1 answer: the map a
  question-free model shows,
- the same averaged-question network explaining the *asked* answer's logit: since each colour is on
  one shape only, naming the answer alone may already point at the right shape; this separates what
  the question adds from what the answer gives away,
- chance: the asked box's share of the image (a peak placed at random hits it that often).

Accuracy is reported with the question and with it averaged (chance 1/6). Differences are judged over
seeds by the verdict rule (:func:`cnnlab.core.text.judged`): real only beyond twice their standard error.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.core.text import judged, markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, register_lab

SHAPES = ("square", "circle", "triangle")
COLOURS = {"red": (230, 40, 40), "green": (40, 190, 60), "blue": (60, 90, 245), "yellow": (235, 220, 40),
           "magenta": (215, 50, 215), "cyan": (40, 210, 220)}
SIZE = 32
SIDES = (7, 12)     # a shape's side (or diameter) in pixels, both ends included
NOISE = 12          # std of the grey-level noise added to every pixel (0..255)
LR = 1e-2
LAYER = "blocks.2"  # the last conv block: where the Grad-CAM is taken


# ---------------------------------------------------------------- scenes and questions

def shape_mask(kind: int, side: int) -> Tensor:
    """``side x side`` bool mask of a square (0), a circle (1) or an upward triangle (2)."""
    i = torch.arange(side, dtype=torch.float32)
    yy, xx = torch.meshgrid(i, i, indexing="ij")
    c = (side - 1) / 2
    if kind == 0:
        return torch.ones(side, side, dtype=torch.bool)
    if kind == 1:
        return (yy - c) ** 2 + (xx - c) ** 2 <= (side / 2) ** 2
    return (xx - c).abs() <= (yy + 1) / side * side / 2  # apex at the top row, base the bottom row


def make_scenes(n: int, seed: int, size: int = SIZE) -> dict:
    """``n`` seeded scenes of 2 or 3 non-overlapping shapes of distinct kinds and colours.

    Returns ``images`` (n x 3 x size x size float in [0, 1]), ``colour`` (n x 3: the colour id of each
    kind, -1 where the kind is absent), ``box`` (n x 3 x 4: the tight box ``y0, x0, y1, x1``, both
    ends included, of each kind's pixels; -1 where absent) and ``mask`` (n x 3 x size x size bool).
    """
    g = torch.Generator().manual_seed(seed)
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 255
    images = torch.zeros(n, 3, size, size)
    colour = torch.full((n, len(SHAPES)), -1, dtype=torch.long)
    box = torch.full((n, len(SHAPES), 4), -1, dtype=torch.long)
    mask = torch.zeros(n, len(SHAPES), size, size, dtype=torch.bool)
    for s in range(n):
        count = 2 + int(torch.randint(2, (1,), generator=g))
        kinds = torch.randperm(len(SHAPES), generator=g)[:count].tolist()
        colours = torch.randperm(len(COLOURS), generator=g)[:count].tolist()
        placed: list[tuple[int, int, int, int]] = []
        for kind, col in zip(kinds, colours):
            while True:  # rejection sampling: boxes 1 px apart at least
                side = int(torch.randint(SIDES[0], SIDES[1] + 1, (1,), generator=g))
                y, x = (int(v) for v in torch.randint(size - side + 1, (2,), generator=g))
                if all(y + side + 1 <= a or a + d + 1 <= y or x + side + 1 <= b or b + d + 1 <= x
                       for a, b, d, _ in placed):
                    break
            placed.append((y, x, side, kind))
            m = torch.zeros(size, size, dtype=torch.bool)
            m[y:y + side, x:x + side] = shape_mask(kind, side)
            rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
            box[s, kind] = torch.tensor([rows.min(), cols.min(), rows.max(), cols.max()])
            colour[s, kind], mask[s, kind] = col, m
            images[s][:, m] = palette[col][:, None]
    images = (images + NOISE / 255 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return {"images": images, "colour": colour, "box": box, "mask": mask}


def questions(scenes: dict) -> tuple[Tensor, Tensor, Tensor]:
    """Every (scene, kind present) pair: scene index, question (the kind), answer (its colour)."""
    scene, kind = (scenes["colour"] >= 0).nonzero(as_tuple=True)
    return scene, kind, scenes["colour"][scene, kind]


def pack(images: Tensor, question: Tensor | None) -> Tensor:
    """Images with the question as constant one-hot planes (one per kind); ``None``: every plane 1/3,
    the averaged question."""
    n, _, h, w = images.shape
    q = (torch.full((n, len(SHAPES)), 1 / len(SHAPES)) if question is None
         else F.one_hot(question, len(SHAPES)).float())
    return torch.cat([images, q[:, :, None, None].expand(n, len(SHAPES), h, w)], 1)


# ---------------------------------------------------------------- the FiLM network

class FiLMBlock(nn.Module):
    """conv 3x3 -> BatchNorm -> FiLM (``gamma * h + beta`` per channel; none when not given) -> ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None) -> Tensor:
        h = self.norm(self.conv(x))
        if gamma is not None:
            h = gamma[:, :, None, None] * h + beta[:, :, None, None]
        return F.relu(h)


class FiLMNet(nn.Module):
    """Three FiLM blocks (``width``, 2·``width``, 2·``width`` channels; 2x2 max-pooling between them:
    32 -> 16 -> 8 pixels), global average pooling, a linear answer head.

    Input: 3 image channels + one constant plane per question kind (:func:`pack`). ``film`` is the
    question's embedding: ``dgamma`` and ``beta`` for every channel of every block, ``gamma = 1 + dgamma``;
    it starts at zero, so training starts from the unmodulated network. ``modulate=False`` skips FiLM.
    """

    def __init__(self, width: int = 16, kinds: int = len(SHAPES), answers: int = len(COLOURS)) -> None:
        super().__init__()
        self.channels = (width, 2 * width, 2 * width)
        self.blocks = nn.ModuleList(FiLMBlock(a, b) for a, b in zip((3,) + self.channels[:-1], self.channels))
        self.film = nn.Linear(kinds, 2 * sum(self.channels))
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.head = nn.Linear(self.channels[-1], answers)
        self.modulate = True

    def forward(self, x: Tensor) -> Tensor:
        h, q = x[:, :3], x[:, 3:, 0, 0]
        params = self.film(q).split([c for c in self.channels for _ in (0, 1)], dim=1) if self.modulate else None
        for i, block in enumerate(self.blocks):
            if i:
                h = F.max_pool2d(h, 2)
            h = block(h, 1 + params[2 * i], params[2 * i + 1]) if params is not None else block(h)
        return self.head(h.mean((2, 3)))


def colour_targets(scenes: dict) -> Tensor:
    """Per scene, a multi-hot vector of the colours present (the question-free network's target)."""
    hot = torch.zeros(len(scenes["colour"]), len(COLOURS))
    scene, kind = (scenes["colour"] >= 0).nonzero(as_tuple=True)
    hot[scene, scenes["colour"][scene, kind]] = 1
    return hot


def train(model: FiLMNet, scenes: dict, epochs: int, seed: int, lr: float = LR, batch: int = 64,
          question_free: bool = False) -> list[float]:
    """Adam (peak ``lr``) with a one-cycle schedule on every (scene, question) pair; returns each epoch's mean loss.

    ``question_free``: the network (FiLM off) is trained instead on every scene, its question planes averaged,
    to name all the colours present (one sigmoid per colour, binary cross-entropy).
    """
    if question_free:
        model.modulate = False
        scene = torch.arange(len(scenes["images"]))
        kind, answer = None, colour_targets(scenes)
    else:
        scene, kind, answer = questions(scenes)
    g = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(scene) / batch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = []
    model.train()
    for _ in range(epochs):
        order, total = torch.randperm(len(scene), generator=g), 0.0
        for idx in order.split(batch):
            x = pack(scenes["images"][scene[idx]], None if kind is None else kind[idx])
            loss = (F.binary_cross_entropy_with_logits(model(x), answer[idx]) if question_free
                    else F.cross_entropy(model(x), answer[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(scene))
    model.eval()
    return losses


@torch.no_grad()
def logits(model: nn.Module, x: Tensor, batch: int = 512) -> Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def grad_cam(model: nn.Module, x: Tensor, targets: Tensor) -> Tensor:
    """The project's Grad-CAM of ``targets``' logits at the last conv block, upsampled to the image (N x H x W)."""
    from cnnlab.explain.cam import get_cam

    return get_cam("gradcam", model, LAYER, batch_size=256)(x, targets)


def peaks(maps: Tensor) -> Tensor:
    """Row and column of each map's maximum (N x 2; the first one in reading order on a tie)."""
    flat = maps.flatten(1).argmax(1)
    return torch.stack([flat // maps.shape[-1], flat % maps.shape[-1]], 1)


def in_box(points: Tensor, boxes: Tensor) -> Tensor:
    """Whether each point (row, col) lies in its box (``y0, x0, y1, x1``, ends included)."""
    y, x = points[:, 0], points[:, 1]
    return (y >= boxes[:, 0]) & (y <= boxes[:, 2]) & (x >= boxes[:, 1]) & (x <= boxes[:, 3])


def hits(maps: Tensor, boxes: Tensor) -> Tensor:
    """Per map: does its peak fall in the box? (bool, N)."""
    return in_box(peaks(maps), boxes)


def hit_rate(maps: Tensor, boxes: Tensor) -> float:
    """The share of maps whose peak falls in their box."""
    return float(hits(maps, boxes).double().mean())


def box_fraction(boxes: Tensor, size: int = SIZE) -> Tensor:
    """Each box's share of the image: the hit rate of a peak placed uniformly at random."""
    return ((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)).float() / size ** 2


def other_box_hits(maps: Tensor, scenes: dict, scene: Tensor, kind: Tensor) -> Tensor:
    """Per map: does its peak fall in the box of another shape of the same scene than the asked one?"""
    p = peaks(maps)
    out = torch.zeros(len(maps), dtype=torch.bool)
    for other in range(len(SHAPES)):
        present = (scenes["colour"][scene, other] >= 0) & (kind != other)
        out |= present & in_box(p, scenes["box"][scene, other])
    return out


def evaluate(model: FiLMNet, scenes: dict, free: FiLMNet | None = None) -> dict:
    """Accuracy and Grad-CAM hit rates on every (scene, question) pair of ``scenes``; ``free``, a question-free
    network (``train(..., question_free=True)``), adds the hit rate of its map for the asked answer."""
    scene, kind, answer = questions(scenes)
    images, boxes = scenes["images"][scene], scenes["box"][scene, kind]
    asked, averaged = pack(images, kind), pack(images, None)
    pred_q, pred_avg = logits(model, asked).argmax(1), logits(model, averaged).argmax(1)
    maps = {"question": grad_cam(model, asked, answer),
            "averaged_top1": grad_cam(model, averaged, pred_avg),
            "averaged_answer": grad_cam(model, averaged, answer)}
    if free is not None:
        maps["question_free"] = grad_cam(free, averaged, answer)
    out = {"accuracy": float((pred_q == answer).double().mean()),
           "accuracy_averaged": float((pred_avg == answer).double().mean()),
           "hit_rate": {k: hit_rate(m, boxes) for k, m in maps.items()},
           "other_box_rate": {k: float(other_box_hits(m, scenes, scene, kind).double().mean()) for k, m in maps.items()},
           "chance": float(box_fraction(boxes).mean())}
    if free is not None:  # per (scene, colour): is the colour's logit > 0 exactly when the colour is there?
        said = logits(free, pack(scenes["images"], None)) > 0
        out["question_free_colour_accuracy"] = float((said == colour_targets(scenes).bool()).double().mean())
    correct = pred_q == answer
    out["hit_rate_when_correct"] = hit_rate(maps["question"][correct], boxes[correct]) if correct.any() else float("nan")
    return out


# ---------------------------------------------------------------- the lab

QUICK = {"train": 300, "test": 60, "epochs": 1, "width": 8}
FULL = {"train": 2000, "test": 300, "epochs": 4, "width": 16}
ARMS = {"question": "conditioned on the question (answer's logit)",
        "averaged_top1": "question averaged (its own top-1 answer)",
        "averaged_answer": "question averaged (the asked answer's logit)",
        "question_free": "question-free network naming every colour (the asked answer's logit)"}


@register_lab("vqa-localisation", "003 Q2d",
              "VQA: does a FiLM-conditioned CNN's Grad-CAM point at the shape the question names?")
def run(ctx: LabContext) -> LabResult:
    size = {**ctx.pick(QUICK, FULL), **{k: v for k, v in ctx.options.items() if k in FULL}}
    test = make_scenes(size["test"], seed=10_000 + ctx.seed)  # the same held-out scenes for every seed
    runs, model, losses = [], None, []
    for seed in ctx.seeds:
        torch.manual_seed(seed)
        model = FiLMNet(size["width"])
        scenes = make_scenes(size["train"], seed=seed)
        losses.append(train(model, scenes, size["epochs"], seed))
        torch.manual_seed(seed)
        free = FiLMNet(size["width"])
        train(free, scenes, size["epochs"], seed, question_free=True)
        runs.append(evaluate(model, test, free))
    n_q = len(questions(test)[0])
    numbers: dict = {
        "accuracy": spread(r["accuracy"] for r in runs),
        "accuracy_averaged": spread(r["accuracy_averaged"] for r in runs),
        "accuracy_chance": 1 / len(COLOURS),
        "hit_rate": {k: spread(r["hit_rate"][k] for r in runs) for k in ARMS},
        "other_box_rate": {k: spread(r["other_box_rate"][k] for r in runs) for k in ARMS},
        "question_free_colour_accuracy": spread(r["question_free_colour_accuracy"] for r in runs),
        "hit_rate_when_correct": spread(r["hit_rate_when_correct"] for r in runs),
        "chance": runs[0]["chance"], "test_questions": n_q, "test_scenes": size["test"],
        "final_train_loss": spread(loss[-1] for loss in losses)}
    hit = {k: numbers["hit_rate"][k]["values"] for k in ARMS}
    chance = [numbers["chance"]] * len(runs)
    rows = [[ARMS[k], f"{numbers['hit_rate'][k]['mean']:.3f} ± {numbers['hit_rate'][k]['std']:.3f}",
             f"{numbers['other_box_rate'][k]['mean']:.3f}"] for k in ARMS]
    rows.append(["chance (asked box's share of the image)", f"{numbers['chance']:.3f}", "-"])
    settings = {"scenes": f"{SIZE}x{SIZE} RGB, 2-3 shapes of {', '.join(SHAPES)}, {len(COLOURS)} colours, sides "
                          f"{SIDES[0]}-{SIDES[1]} px, noise std {NOISE}/255",
                "train_scenes": size["train"], "test_scenes": size["test"], "test_questions": n_q,
                "epochs": size["epochs"], "width": size["width"], "seeds": ctx.seeds,
                "optimizer": f"adam {LR:g} one-cycle, batch 64", "cam": f"project Grad-CAM at {LAYER}",
                "averaged question": "every question plane 1/3 (the mean question embedding)",
                "test scenes seed": 10_000 + ctx.seed,
                "question-free network": "same blocks, FiLM off, one sigmoid per colour, same scenes and epochs",
                "figure": "the last seed's networks"}
    result = LabResult(numbers, _figure(model, test, numbers), settings=settings,
                       table=markdown_table(["Grad-CAM", "peak in the asked box", "peak in another shape's box"], rows))
    result.conclude("Answer accuracy on {n} held-out questions: {a:.3f} with the question, {b:.3f} with it averaged "
                    "(chance {c:.3f}).", n="test_questions", a="accuracy.mean", b="accuracy_averaged.mean",
                    c="accuracy_chance")
    result.conclude("Answer accuracy over seeds (std {sa:.3f} and {sb:.3f}), question vs averaged: " + judged(
        "with the question", numbers["accuracy"]["values"], "averaged", numbers["accuracy_averaged"]["values"],
        {"higher": "the network uses the question to pick the shape", "lower": "the question hurts the answer",
         "same": "the question does not change the answer"}) + ".", sa="accuracy.std", sb="accuracy_averaged.std")
    result.conclude("The conditioned Grad-CAM peaks in the asked shape's box for {h:.3f} of the questions ({o:.3f} in "
                    "another shape's box); a random peak would hit it {c:.3f} of the time: " + judged(
                        "conditioned", hit["question"], "chance", chance,
                        {"higher": "the map points where the question points",
                         "lower": "the map avoids the asked shape", "same": "the map does not find the asked shape"})
                    + ".", h="hit_rate.question.mean", o="other_box_rate.question.mean", c="chance")
    result.conclude("Against the same network with the question averaged, explaining its own answer (hit rate {u:.3f}): "
                    + judged("conditioned", hit["question"], "averaged, top-1", hit["averaged_top1"],
                             {"higher": "the question moves the map onto the shape it names",
                              "lower": "the question-free map hits the asked shape more often",
                              "same": "the question does not move the map"})
                    + ".", u="hit_rate.averaged_top1.mean")
    result.conclude("Against the averaged question explaining the asked answer's logit (hit rate {u:.3f}: the answer's "
                    "colour alone can point at the shape): "
                    + judged("conditioned", hit["question"], "averaged, asked answer", hit["averaged_answer"],
                             {"higher": "the question localises beyond what naming the answer gives away",
                              "lower": "naming the answer localises better than asking the question",
                              "same": "the localisation is what the answer's colour gives away"})
                    + ".", u="hit_rate.averaged_answer.mean")
    result.conclude("Against a question-free network of the same shape trained on the same scenes to name every colour "
                    "present (per-colour accuracy {f:.3f}), explaining the asked answer's logit (hit rate {u:.3f}): "
                    + judged("conditioned", hit["question"], "question-free", hit["question_free"],
                             {"higher": "asking the question localises better than naming its answer to a model "
                                        "that was never asked",
                              "lower": "the question-free model's map of the answer's colour localises better",
                              "same": "on these scenes (each colour on one shape) naming the answer's colour "
                                      "localises as well as asking the question"})
                    + ".", f="question_free_colour_accuracy.mean", u="hit_rate.question_free.mean")
    return result


def _figure(model: FiLMNet, test: dict, numbers: dict):
    """Three test scenes, each with the Grad-CAMs (the last seed's network) of two different questions and of the
    averaged question (its own top-1 answer); dashed: the asked shape's box, +: the map's peak. The hit rates beside."""
    import matplotlib.pyplot as plt

    names = list(COLOURS)
    two = ((test["colour"] >= 0).sum(1) >= 2).nonzero()[:3, 0]
    fig = plt.figure(figsize=(13, 2.6 * len(two)))
    grid = fig.add_gridspec(len(two), 5, width_ratios=(1, 1, 1, 1, 1.6))
    for r, s in enumerate(two.tolist()):
        kinds = (test["colour"][s] >= 0).nonzero()[:, 0][:2]
        image = test["images"][s:s + 1]
        panels = [("scene", None, None)]
        for k in kinds.tolist():
            x = pack(image, torch.tensor([k]))
            answer = test["colour"][s, k:k + 1]
            pred = int(logits(model, x).argmax(1))
            title = f"what colour is the {SHAPES[k]}?\n-> {names[pred]} (true: {names[int(answer)]})"
            panels.append((title, grad_cam(model, x, answer)[0], test["box"][s, k]))
        avg = pack(image, None)
        top = logits(model, avg).argmax(1)
        panels.append((f"question averaged\n-> {names[int(top)]}", grad_cam(model, avg, top)[0], None))
        for c, (title, cam, box) in enumerate(panels):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(image[0].permute(1, 2, 0).numpy())
            if cam is not None:
                ax.imshow(cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
                py, px = peaks(cam[None])[0].tolist()
                ax.plot(px, py, "w+", ms=10, mew=2)
            if box is not None:
                y0, x0, y1, x1 = box.tolist()
                ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec="white",
                                           lw=1.5, ls="--"))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    ax = fig.add_subplot(grid[:, 4])
    labels = ["question", "averaged,\ntop-1", "averaged,\nasked\nanswer", "question-\nfree net,\nasked\nanswer",
              "chance"]
    means = [numbers["hit_rate"][k]["mean"] for k in ARMS] + [numbers["chance"]]
    stds = [numbers["hit_rate"][k]["std"] for k in ARMS] + [0]
    ax.bar(labels, means, yerr=stds, capsize=3, color=["C0", "C1", "C2", "C3", "grey"])
    ax.set(title="Grad-CAM peak in the asked box", ylabel="hit rate (mean ± seed std)", ylim=(0, 1))
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig
