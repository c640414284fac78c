"""003 Q2d, ``cnnlab lab vqa-localisation``: the scene generator, FiLM, the hit rate and the quick lab."""
from __future__ import annotations

import json

import torch

from cnnlab.labs import run_lab
from cnnlab.labs.catalog import vqa_localisation as vqa


def test_boxes_hold_their_shapes_and_the_scenes_their_colours():
    scenes = vqa.make_scenes(40, seed=3)
    palette = torch.tensor(list(vqa.COLOURS.values()), dtype=torch.float32) / 255
    present = scenes["colour"] >= 0
    assert ((present.sum(1) >= 2) & (present.sum(1) <= 3)).all()
    for s in range(40):
        kinds = present[s].nonzero()[:, 0].tolist()
        colours = scenes["colour"][s, kinds].tolist()
        assert len(set(colours)) == len(colours)  # distinct colours
        for k in range(len(vqa.SHAPES)):
            mask, box = scenes["mask"][s, k], scenes["box"][s, k]
            if k not in kinds:
                assert not mask.any() and (box == -1).all()
                continue
            y0, x0, y1, x1 = box.tolist()
            inside = torch.zeros_like(mask)
            inside[y0:y1 + 1, x0:x1 + 1] = True
            assert mask.any() and not (mask & ~inside).any()  # every pixel of the shape in its box
            assert mask[y0].any() and mask[y1].any() and mask[:, x0].any() and mask[:, x1].any()  # and tight
            # the shape's pixels carry its colour (within the noise)
            mean = scenes["images"][s][:, mask].mean(1)
            assert torch.allclose(mean, palette[scenes["colour"][s, k]], atol=0.06)
        for a in kinds:  # boxes do not overlap
            for b in kinds:
                if a < b:
                    ba, bb = scenes["box"][s, a], scenes["box"][s, b]
                    assert ba[2] < bb[0] or bb[2] < ba[0] or ba[3] < bb[1] or bb[3] < ba[1]
    again = vqa.make_scenes(40, seed=3)
    assert torch.equal(again["images"], scenes["images"])  # seeded


def test_the_answer_is_the_asked_shapes_colour():
    scenes = vqa.make_scenes(30, seed=1)
    scene, kind, answer = vqa.questions(scenes)
    assert len(scene) == int((scenes["colour"] >= 0).sum())
    for s, k, a in zip(scene.tolist(), kind.tolist(), answer.tolist()):
        assert scenes["colour"][s, k] == a >= 0
        assert scenes["mask"][s, k].any()
    x = vqa.pack(scenes["images"][scene], kind)
    assert x.shape[1] == 3 + len(vqa.SHAPES)
    assert torch.equal(x[:, 3:, 5, 7].argmax(1), kind) and torch.equal(x[:, 3:].sum(1), torch.ones_like(x[:, 0]))
    assert torch.allclose(vqa.pack(scenes["images"][:2], None)[:, 3:], torch.full((2, 3, 32, 32), 1 / 3))


def test_film_with_gamma_one_and_beta_zero_is_the_unmodulated_network():
    torch.manual_seed(0)
    net = vqa.FiLMNet(width=8).eval()
    torch.nn.init.normal_(net.film.weight)
    torch.nn.init.normal_(net.film.bias)
    scenes = vqa.make_scenes(6, seed=0)
    x = vqa.pack(scenes["images"], torch.tensor([0, 1, 2, 0, 1, 2]))
    modulated = net(x)
    net.modulate = False
    plain = net(x)
    assert not torch.allclose(modulated, plain)  # a real embedding changes the answer
    net.modulate = True
    torch.nn.init.zeros_(net.film.weight)
    torch.nn.init.zeros_(net.film.bias)  # gamma = 1 + 0, beta = 0 for every question
    assert torch.allclose(net(x), plain, atol=1e-6)
    block = net.blocks[0]
    h = torch.randn(2, 3, 8, 8)
    assert torch.allclose(block(h, torch.ones(2, 8), torch.zeros(2, 8)), block(h))


def test_hit_rate_against_hand_made_maps():
    maps = torch.zeros(3, 32, 32)
    maps[0, 5, 6] = 1        # in the box 4..9 x 4..9
    maps[1, 20, 20] = 1      # outside it
    maps[2, 9, 4] = 1        # on the box's corner: the ends are included
    boxes = torch.tensor([[4, 4, 9, 9]] * 3)
    assert vqa.peaks(maps).tolist() == [[5, 6], [20, 20], [9, 4]]
    assert vqa.hits(maps, boxes).tolist() == [True, False, True]
    assert vqa.hit_rate(maps, boxes) == 2 / 3
    assert vqa.box_fraction(boxes[:1]).item() == 36 / 1024


def test_quick_lab_writes_files_that_parse(tmp_path):
    record = run_lab("vqa-localisation", tmp_path, quick=True, progress=False)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["lab"] == "vqa-localisation" and saved["question"] == "003 Q2d"
    numbers = saved["numbers"]
    for arm in vqa.ARMS:
        assert 0 <= numbers["hit_rate"][arm]["mean"] <= 1
    assert 0 < numbers["chance"] < 0.5 and numbers["test_questions"] >= 2 * numbers["test_scenes"]
    assert 0 <= numbers["accuracy"]["mean"] <= 1
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "003 Q2d" in (tmp_path / "summary.md").read_text()
    assert record["conclusion"] == saved["conclusion"] and len(saved["conclusion"]) == 6


def test_question_free_target_names_every_colour_present():
    scenes = vqa.make_scenes(10, seed=2)
    hot = vqa.colour_targets(scenes)
    for s in range(10):
        present = sorted(c for c in scenes["colour"][s].tolist() if c >= 0)
        assert hot[s].nonzero()[:, 0].tolist() == present
    net = vqa.FiLMNet(width=4)
    vqa.train(net, scenes, 1, seed=0, question_free=True)
    assert net.modulate is False  # never sees a question
