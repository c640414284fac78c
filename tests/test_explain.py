"""CAMs against pytorch-grad-cam and hand-derived cases, Shapley estimates against enumeration,
faithfulness/stability metrics, class-model visualization, bad input and the explain CLI."""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from scipy.stats import spearmanr
from torch import nn

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.explain.cam import ShapCAM, feature_layers, get_cam
from cnnlab.explain.metrics import noise_stability, perturbation_curve, rank_correlation
from cnnlab.explain.shapley import exact_shapley, sample_shapley
from cnnlab.models.pixel import pixel_wrap
from cnnlab.runs.sources import resolve_class
from cnnlab.explain.visualize import class_model
from cnnlab.models import create_model
from cnnlab.train.checkpoint import save_checkpoint

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM as PeerGradCAM  # noqa: E402
from pytorch_grad_cam import GradCAMPlusPlus as PeerGradCAMPP  # noqa: E402
from pytorch_grad_cam import ScoreCAM as PeerScoreCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


def tiny_cnn(channels: int = 6, classes: int = 3, seed: int = 0) -> nn.Module:
    """Conv stack whose ``act2`` has few channels and whose head is non-linear (a non-additive game)."""
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 3, padding=1), act1=nn.ReLU(), pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(8, channels, 3, padding=1), act2=nn.ReLU(),
        head=nn.Sequential(nn.Conv2d(channels, 5, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(5, classes)))).eval()


def correlations(a: torch.Tensor, b) -> list[float]:
    b = torch.as_tensor(b)
    return [float(np.corrcoef(a[i].flatten().numpy(), b[i].flatten().numpy())[0, 1]) for i in range(len(a))
            if a[i].std() > 0]


def test_gradcam_matches_pytorch_grad_cam_on_resnet18():
    torch.manual_seed(0)
    net = pixel_wrap(torchvision.models.resnet18(weights=None, num_classes=10), (0.485, 0.456, 0.406),
                     (0.229, 0.224, 0.225))
    x = torch.rand(4, 3, 64, 64)
    targets = net(x).argmax(1).tolist()  # the top-1 class has positive evidence somewhere
    ours = get_cam("gradcam", net, "net.layer3")(x, targets)
    with PeerGradCAM(net, [net.net.layer3]) as peer:
        theirs = peer(x, [ClassifierOutputTarget(t) for t in targets])
    corr = correlations(ours, theirs)
    assert len(corr) == 4 and min(corr) > 0.99


@pytest.mark.parametrize("method,peer", [("gradcam++", PeerGradCAMPP), ("scorecam", PeerScoreCAM)])
def test_gradcam_plusplus_and_scorecam_match_pytorch_grad_cam(method, peer):
    net = tiny_cnn()
    x = torch.rand(3, 3, 16, 16)
    ours = get_cam(method, net, "act2")(x, [0, 1, 2])
    with peer(net, [net.act2]) as p:
        theirs = p(x, [ClassifierOutputTarget(t) for t in (0, 1, 2)])
    corr = correlations(ours, theirs)
    assert len(corr) >= 2 and min(corr) > 0.99


def pooled_linear_net(channels: int, classes: int, seed: int):
    """conv-ReLU ``feats`` -> global average pool -> linear ``fc``: the model whose CAMs have closed forms."""
    torch.manual_seed(seed)
    feats = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
    fc = nn.Linear(channels, classes)
    net = nn.Sequential(OrderedDict(feats=feats, pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=fc))
    return net, feats, fc


def test_gradcam_under_global_pooling_and_linear_head_is_the_original_cam():
    """With logits = W @ mean(A), dS_c/dA_k = W_ck / hw everywhere, so Grad-CAM = relu(sum_k W_ck A_k) (Zhou's CAM)."""
    net, feats, fc = pooled_linear_net(channels=4, classes=2, seed=1)
    x = torch.rand(2, 3, 8, 8)
    ours = get_cam("gradcam", net, "feats")(x, [1, 1])
    cam = torch.relu(torch.einsum("k,nkhw->nhw", fc.weight[1].detach(), feats(x).detach()))
    cam = (cam - cam.amin((1, 2), keepdim=True)) / (cam.amax((1, 2), keepdim=True) - cam.amin((1, 2), keepdim=True))
    assert torch.allclose(ours, cam, atol=1e-5)  # same resolution as the input: no upsampling in between


def test_default_layer_is_the_last_feature_map_and_shared_modules_are_excluded():
    net = pixel_wrap(torchvision.models.resnet18(weights=None), (0.5,) * 3, (0.5,) * 3)
    layers = feature_layers(net, torch.rand(1, 3, 64, 64))
    assert list(layers)[-1] == "net.layer4" and layers["net.layer4"] == (512, 2, 2)
    assert "net.avgpool" not in layers  # 1 x 1: not a map
    assert "net.layer1.0.relu" not in layers  # torchvision reuses each block's ReLU twice
    cam = get_cam("gradcam", net)
    cam(torch.rand(1, 3, 64, 64))
    assert cam.layer_name == "net.layer4"


def test_unknown_layer_lists_the_valid_ones():
    net = tiny_cnn()
    with pytest.raises(CnnlabError) as err:
        get_cam("gradcam", net, "act3")(torch.rand(1, 3, 16, 16))
    msg = str(err.value)
    assert "'act3' does not exist" in msg and "Did you mean: act2" in msg
    assert "conv2" in msg and "head.1" in msg
    with pytest.raises(CnnlabError, match="does not output a feature map"):
        get_cam("gradcam", net, "head.4")(torch.rand(1, 3, 16, 16))
    with pytest.raises(CnnlabError, match="unknown CAM method"):
        get_cam("gradcam3", net)


def test_exact_shapley_on_hand_solved_games():
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    assert torch.allclose(exact_shapley(lambda m: m.float() @ w, 4).float(), w)  # additive: phi = w
    # unanimity game of {0, 2}: worth 1 only when both are in -> they split it, the others get 0
    phi = exact_shapley(lambda m: (m[:, 0] & m[:, 2]).float(), 4)
    assert torch.allclose(phi, torch.tensor([0.5, 0, 0.5, 0], dtype=torch.float64))
    # majority of 3 voters: symmetric, so 1/3 each
    assert torch.allclose(exact_shapley(lambda m: (m.sum(1) >= 2).float(), 3), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_shapcam_monte_carlo_converges_to_exact_shapley_values_of_the_channels():
    net = tiny_cnn(channels=6)
    x = torch.rand(1, 3, 16, 16)
    cam = ShapCAM(net, "act2")
    cam(x, [2])  # resolves the layer
    game = cam.game(x[0], torch.tensor(2))
    exact = exact_shapley(game, 6)
    full_minus_empty = float(game(torch.ones(1, 6, dtype=torch.bool)) - game(torch.zeros(1, 6, dtype=torch.bool)))
    errors = {}
    for samples in (4, 64, 1024):
        est = sample_shapley(game, 6, samples, torch.Generator().manual_seed(0))
        assert est.sum().item() == pytest.approx(full_minus_empty, abs=1e-4)  # efficiency holds for every sample
        errors[samples] = float((est - exact).abs().max())
    scale = float(exact.abs().max())
    assert errors[1024] < 0.02 * scale
    assert errors[1024] < errors[64] < errors[4] or errors[1024] < errors[4] / 4
    # the map uses those values as channel weights
    acts, _, _ = cam.activations(x, torch.tensor([2]))
    w = cam.channel_weights(x, acts, None, torch.tensor([2]))[0]
    assert torch.allclose(w.double(), sample_shapley(game, 6, 16, torch.Generator().manual_seed(0)), atol=1e-5)


def test_shapcam_before_a_linear_head_is_exact_with_one_sample():
    """Pooling + linear after the layer make the game additive: phi_k = W_ck * mean(A_k), for any order."""
    net, feats, fc = pooled_linear_net(channels=5, classes=3, seed=2)
    x = torch.rand(2, 3, 8, 8)
    cam = ShapCAM(net, "feats", samples=1)
    cam(x, [0, 2])
    acts, _, _ = cam.activations(x, torch.tensor([0, 2]))
    w = cam.channel_weights(x, acts, None, torch.tensor([0, 2]))
    expected = fc.weight[[0, 2]].detach() * acts.mean((2, 3))
    assert torch.allclose(w, expected, atol=1e-5)


def test_shapcam_explains_a_layer_inside_a_residual_block():
    net = pixel_wrap(torchvision.models.resnet18(weights=None, num_classes=4), (0.5,) * 3, (0.5,) * 3)
    maps = get_cam("shapcam", net, "net.layer4.1.bn1", samples=2)(torch.rand(2, 3, 64, 64))
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()


class RegionModel(nn.Module):
    """Class 1's logit is 10 x the mean brightness of the top-left quadrant; class 0's is fixed at 2."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        region = x[:, :, :8, :8].mean((1, 2, 3))
        return torch.stack([torch.full_like(region, 2.0), self.scale * region], 1)


def test_deletion_and_insertion_curves_reward_the_map_that_finds_the_evidence():
    model = RegionModel()
    x = torch.full((1, 1, 16, 16), 0.8)
    good = torch.zeros(1, 16, 16)
    good[:, :8, :8] = 1
    bad = 1 - good
    t = torch.tensor([1])
    dele_good = perturbation_curve(model, x, good, t, "deletion", steps=4)
    dele_bad = perturbation_curve(model, x, bad, t, "deletion", steps=4)
    p_full = torch.softmax(torch.tensor([2.0, 8.0]), 0)[1]
    p_black = torch.softmax(torch.tensor([2.0, 0.0]), 0)[1]
    # endpoints: the untouched image and the all-black image; deleting the quadrant first empties it at 25%
    assert dele_good[0, 0] == pytest.approx(float(p_full), abs=1e-6)
    assert dele_good[0, 1] == pytest.approx(float(p_black), abs=1e-6)
    assert dele_good[0, -1] == pytest.approx(float(p_black), abs=1e-6)
    assert torch.allclose(dele_bad[0, :4], p_full.expand(4))  # the useless pixels go first
    ins_good = perturbation_curve(model, x, good, t, "insertion", steps=4, baseline="zero")
    assert ins_good[0, 1] == pytest.approx(float(p_full), abs=1e-6)
    auc_good = torch.trapezoid(dele_good, dx=0.25).item()
    auc_bad = torch.trapezoid(dele_bad, dx=0.25).item()
    assert auc_good < auc_bad


def test_rank_correlation_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 40), generator=g).float()  # many ties, like a ReLU-clipped map
    b = a + torch.randn(3, 40, generator=g)
    ours = rank_correlation(a, b)
    for i in range(3):
        assert ours[i].item() == pytest.approx(spearmanr(a[i].numpy(), b[i].numpy())[0], abs=1e-5)


def test_noise_stability_is_one_without_noise_and_lower_with_it():
    net = tiny_cnn()
    x = torch.rand(2, 3, 16, 16)
    cam = get_cam("gradcam", net, "act2")
    t = torch.tensor([0, 1])
    assert torch.allclose(noise_stability(cam, x, t, sigma=0.0, repeats=1), torch.ones(2))
    noisy = noise_stability(cam, x, t, sigma=0.3, repeats=2)
    assert (noisy < 0.999).all() and (noisy > -1).all()
    with pytest.raises(CnnlabError, match="sigma"):
        noise_stability(cam, x, t, sigma=-0.1)


def test_class_model_visualization_climbs_toward_the_class_template():
    """A linear class score +1 on the left half, -1 on the right: ascent must brighten left, darken right."""
    linear = nn.Linear(3 * 16 * 16, 3)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[2].view(3, 16, 16)[:, :, :8] = 1
        linear.weight[2].view(3, 16, 16)[:, :, 8:] = -1
    net = nn.Sequential(nn.Flatten(), linear)
    result = class_model(net, 2, (3, 16, 16), steps=30, lr=0.05, jitter=1, blur_every=5)
    assert len(result.scores) == 31
    assert result.scores[-1] > result.scores[0] + 100
    image = result.image
    assert image[:, :, 1:7].mean() > 0.8 and image[:, :, 9:15].mean() < 0.2
    assert 0 <= image.min() and image.max() <= 1
    with pytest.raises(CnnlabError):
        class_model(net, 2, (3, 16, 16), steps=0)


def test_unknown_class_name_suggests_close_names():
    classes = ["flamingo", "goose", "black swan", "pelican"]
    assert resolve_class("Flamingo", classes) == 0 and resolve_class("3", classes) == 3
    with pytest.raises(CnnlabError, match="Did you mean: flamingo"):
        resolve_class("flamingoo", classes)
    with pytest.raises(CnnlabError, match="out of range"):
        resolve_class(7, classes)


def test_efficientnet_lite0_on_a_photo_matches_the_peer_and_its_map_is_faithful():
    from cnnlab.data.images import load_images
    from cnnlab.runs.sources import load_model

    pc = load_model()  # offline ImageNet weights
    x = load_images(["skimage:chelsea"], pc.input_size)
    probs = pc.model(x).softmax(1)[0]
    assert "cat" in pc.classes[int(probs.argmax())]
    ours = get_cam("gradcam", pc.model)(x)
    with PeerGradCAM(pc.model, [pc.model.net[0]]) as peer:
        theirs = peer(x, None)
    assert correlations(ours, theirs)[0] > 0.99
    t = probs.argmax()[None]
    dele = perturbation_curve(pc.model, x, ours, t, "deletion", steps=8).mean()
    dele_inverted = perturbation_curve(pc.model, x, 1 - ours, t, "deletion", steps=8).mean()
    assert dele < dele_inverted
    with pytest.raises(CnnlabError, match="Did you mean: flamingo"):
        resolve_class("flamingoo", pc.classes, "--class")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A (random) simple-cnn checkpoint on 1 x 28 x 28 images, saved the way training saves it."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt")
    model = create_model("simple-cnn", num_classes=3, in_chans=1)
    save_checkpoint(folder / "best.ckpt", dict(model="simple-cnn", model_kwargs={}, classes=["cat", "dog", "flamingo"],
                                               mean=[0.3], std=[0.3], input_size=[1, 28, 28],
                                               state_dict=model.state_dict()))
    image = folder / "img.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(image)
    return folder / "best.ckpt", image


def test_cli_explain_compare_and_bad_input(tiny_checkpoint, tmp_path, capsys):
    ckpt, image = tiny_checkpoint
    assert main(["explain", str(image), "--checkpoint", str(ckpt), "--method", "gradcam++", "--target", "dog",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "img_gradcam++.png").is_file()
    assert "for dog" in capsys.readouterr().out
    assert main(["explain", "compare", str(image), str(image), "--checkpoint", str(ckpt), "--steps", "4",
                 "--repeats", "1", "--samples", "2", "--out", str(tmp_path / "cmp")]) == 0
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["gradcam", "gradcam++", "scorecam", "shapcam"]
    assert all(0 <= r["deletion_auc"] <= 1 and -1 <= r["stability"] <= 1 for r in rows)
    assert (tmp_path / "cmp" / "compare.png").is_file() and (tmp_path / "cmp" / "compare.md").is_file()
    assert main(["explain", "layers", "--checkpoint", str(ckpt)]) == 0
    assert "net." in capsys.readouterr().out
    assert main(["explain", str(image), "--checkpoint", str(ckpt), "--layer", "net.nope"]) == 2
    assert "Valid layers" in capsys.readouterr().err
    assert main(["visualize", "--class", "flamingoo", "--checkpoint", str(ckpt)]) == 2
    assert "Did you mean: flamingo" in capsys.readouterr().err
    assert main(["visualize", "--class", "flamingo", "--checkpoint", str(ckpt), "--steps", "5",
                 "--out", str(tmp_path / "vis")]) == 0
    summary = json.loads((tmp_path / "vis" / "flamingo.json").read_text())
    assert len(summary["scores"]) == 6 and (tmp_path / "vis" / "flamingo.png").is_file()


def test_torchvision_models_by_name_with_imagenet_class_names():
    from cnnlab.runs.sources import load_model

    pc = load_model("torchvision:resnet18", pretrained=False)
    assert len(pc.classes) == 1000 and pc.classes[130] == "flamingo" and pc.input_size == (3, 224, 224)
    assert pc.model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(CnnlabError, match="torchvision:resnet18"):
        load_model("torchvision:resnt18")
    with pytest.raises(CnnlabError, match="torchvision:<name>"):
        load_model("resnet18")


# ---------------------------------------------------------------- 003 Q1b: CAMs under attack; 003 Q7

def test_topk_overlap_and_rank_correlation_on_a_hand_made_case():
    from cnnlab.explain.metrics import map_correlation, topk_overlap

    a = torch.arange(10.0).view(1, 2, 5)
    swapped = torch.tensor([0, 1, 2, 3, 4, 5, 6, 9, 8, 7.0]).view(1, 2, 5)  # the 1st and 3rd largest swap places
    # top 20% = 2 pixels: a's are positions 8, 9; swapped's are 7, 8 -> one shared
    assert topk_overlap(a, swapped, 0.2).tolist() == [0.5]
    assert topk_overlap(a, a.flip(-1).flip(-2), 0.2).tolist() == [0.0]
    # Spearman: rank differences +-2 at two positions: 1 - 6 * 8 / (10 * 99)
    assert float(map_correlation(a, swapped)) == pytest.approx(1 - 48 / 990, abs=1e-6)
    assert float(map_correlation(a, a.flip(-1).flip(-2))) == pytest.approx(-1)
    assert torch.isnan(map_correlation(a, torch.zeros_like(a))).all()  # a constant map ranks nothing


def test_unperturbed_maps_have_correlation_and_overlap_one_and_attacks_move_them():
    from cnnlab.explain.metrics import map_shift

    model = tiny_cnn(channels=4, classes=3, seed=2)
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    res = map_shift(model, x, ("gradcam", "shapcam"), ("fgsm", "pgd"), (0.0, 0.5), samples=4, deletion_steps=4)
    zero = [r for r in res["rows"] if r["eps"] == 0]
    assert len(zero) == 4 and all(r["flip_rate"] == 0 and r["held"]["n"] == 6 for r in zero)
    for r in zero:
        assert r["all"]["spearman"] == pytest.approx(1) and r["all"]["topk_overlap"] == 1
        assert r["all"]["deletion_auc"] == pytest.approx(res["clean"][r["method"]]["deletion_auc"])
    moved = [r for r in res["rows"] if r["eps"] == 0.5]
    assert all(r["all"]["spearman"] < 0.99 for r in moved)
    assert all(r["held"]["n"] + r["flipped"]["n"] == 6 for r in moved)


def test_verdicts_say_within_noise_when_the_gap_is_inside_two_standard_errors():
    from cnnlab.labs.catalog.cam_robustness import compare_gap, mean_gap, training_verdict

    def t(values):
        return torch.tensor(values, dtype=torch.float64)

    steady = mean_gap(t([0.9, 0.8, 0.7, 0.9]), t([0.5, 0.4, 0.3, 0.5]))  # every image gains exactly 0.4
    assert steady["difference"] == pytest.approx(0.4) and steady["se"] == pytest.approx(0, abs=1e-12)
    assert compare_gap(steady) == "higher"
    noisy = mean_gap(t([0.9, 0.1, 0.8, 0.2]), t([0.2, 0.8, 0.1, 0.8]))  # gaps +0.7, -0.7, +0.7, -0.6
    assert noisy["difference"] == pytest.approx(0.025) and noisy["se"] == pytest.approx(0.7805 / 2, abs=1e-3)
    assert compare_gap(noisy) == "same"

    def rows(values):
        return [{"method": "gradcam", "per_image": {"spearman": values, "flipped": [False] * len(values)}}]

    gap, template = training_verdict("gradcam", rows([0.9, 0.1, 0.8, 0.2]), rows([0.2, 0.8, 0.1, 0.8]), paired=True)
    text = template.format(**gap)  # the lab fills the sentence from the numbers it quotes
    assert "only within noise" in text
    gap, template = training_verdict("gradcam", rows([0.5, 0.4, 0.3, 0.5]), rows([0.9, 0.8, 0.7, 0.9]), paired=True)
    text = template.format(**gap)
    assert "made the maps steadier" in text and "+0.400" in text


def test_pearson_matches_numpy():
    from cnnlab.explain.api import pearson

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 5, 5, generator=g), torch.rand(3, 5, 5, generator=g)
    assert pearson(a, b) == pytest.approx(float(np.corrcoef(a.flatten(), b.flatten())[0, 1]), abs=1e-9)
    assert pearson(a, 2 * a - 1) == pytest.approx(1)


def test_cli_lab_cam_robustness_trains_both_models_and_writes_files_that_parse(tmp_path, capsys):
    out = tmp_path / "rb"
    # --quick: what these options spelled out before (digits, 1 epoch on 200 images, width 4, 6 images, FGSM 0.1)
    assert main(["lab", "cam-robustness", "--quick", "--dataset", "digits", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "adversarial model" in text and "adversarial training" in text
    r = json.loads((out / "robustness.json").read_text())
    assert set(r["results"]) == {"clean", "adversarial"} and r["models"]["adversarial"]["checkpoint"].endswith("best.ckpt")
    assert json.loads((out / "models" / "adversarial" / "metrics.json").read_text())["adversarial"] == "fgsm:0.1"
    assert [(x["method"], x["eps"]) for x in r["results"]["clean"]["rows"]] == [("gradcam", 0.1), ("shapcam", 0.1)]
    assert len(r["conclusions"]) == 9 and "| clean | gradcam | fgsm | 0.1 |" in (out / "robustness.md").read_text()
    assert (out / "maps.png").stat().st_size > 0 and (out / "stability.png").stat().st_size > 0
    assert r["trained_here"]["epochs"] == 1 and r["trained_here"]["subset"] == 200 and r["images"] == 6


def test_cli_visualize_compare_attack_writes_figure_and_json(tiny_checkpoint, tmp_path, capsys):
    from cnnlab.data.images import load_images
    from cnnlab.runs.sources import load_model

    ckpt, image = tiny_checkpoint
    pc = load_model(checkpoint=ckpt)
    clean = pc.classes[int(pc.model(load_images([image], pc.input_size)).argmax())]
    target = next(c for c in pc.classes if c != clean)
    assert main(["visualize", "--class", target, "--compare-attack", str(image), "--checkpoint", str(ckpt),
                 "--steps", "3", "--out", str(tmp_path)]) == 0
    assert "Pearson correlation of the perturbation" in capsys.readouterr().out
    r = json.loads((tmp_path / f"{target}_vs_attack.json").read_text())
    assert r["target"] == target and r["clean_prediction"] == clean
    assert r["baseline_class"] not in (target, clean) and r["linf"] > 0  # reaching the class: test_attack.py
    assert -1 <= r["pearson_target"] <= 1 and -1 <= r["pearson_baseline"] <= 1
    assert (tmp_path / f"{target}_vs_attack.png").stat().st_size > 0
    assert main(["visualize", "--class", clean, "--compare-attack", str(image), "--checkpoint", str(ckpt)]) == 2
    assert "already says" in capsys.readouterr().err


# -- 003 Q7b: untargeted FGSM on images of class C vs C's class model

def test_pearson_rows_matches_numpy_corrcoef():
    from cnnlab.explain.untargeted import pearson_rows

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    r = pearson_rows(a, b)
    for i in range(5):
        for j in range(3):
            assert float(r[i, j]) == pytest.approx(float(np.corrcoef(a[i].flatten(), b[j].flatten())[0, 1]), abs=1e-12)
    assert float(pearson_rows(a[:1], 3 * a[:1] + 2)[0, 0]) == pytest.approx(1)
    assert torch.isnan(pearson_rows(torch.ones(1, 16), b)).all()  # a constant direction has no correlation


def test_untargeted_fgsm_direction_on_a_linear_model_is_minus_the_sign_of_the_true_class_margin():
    """Two classes, logits W x + b: d CE(x, y) / dx = -(1 - p_y) (w_y - w_other), so untargeted FGSM adds
    ``-eps * sign(w_y - w_other)`` (down the true class's margin); checked by hand, by central differences of
    the loss, and against ``fgsm`` itself."""
    import torch.nn.functional as F

    from cnnlab.attack.attacks import fgsm
    from cnnlab.explain.untargeted import untargeted_directions

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).double().eval()
    x = (0.3 + 0.4 * torch.rand(3, 1, 4, 4)).double()
    y = torch.tensor([0, 1, 0])
    d = untargeted_directions(model, x, y, eps_max=1.0)
    w = model[1].weight.detach()
    for i in range(3):
        margin = w[y[i]] - w[1 - y[i]]
        assert torch.equal(d["sign"][i].flatten(), -margin.sign())
        fd = torch.zeros(16, dtype=torch.float64)
        for k in range(16):
            e = torch.zeros(16, dtype=torch.float64)
            e[k] = 1e-6
            up = F.cross_entropy(model((x[i].flatten() + e).view(1, 1, 4, 4)), y[i:i + 1])
            down = F.cross_entropy(model((x[i].flatten() - e).view(1, 1, 4, 4)), y[i:i + 1])
            fd[k] = (up - down) / 2e-6
        torch.testing.assert_close(d["gradient"][i].flatten(), fd, atol=1e-8, rtol=1e-6)
    eps = 0.01  # x stays inside [0, 1]: no clipping
    torch.testing.assert_close(fgsm(model, x, y, eps) - x, eps * d["sign"])
    flipped = torch.isfinite(d["eps"])
    assert flipped.any()
    torch.testing.assert_close(d["applied"][flipped], (x + d["eps"].view(-1, 1, 1, 1) * d["sign"]).clamp(0, 1)[flipped]
                               - x[flipped])
    pred = model(x + d["applied"]).argmax(1)
    assert (pred[flipped] != y[flipped]).all()


def test_untargeted_comparison_finds_a_planted_resemblance():
    """Directions built as minus each image's class model plus noise: r(own) is far below r(others)."""
    from cnnlab.explain.untargeted import compare_rows, pearson_rows

    g = torch.Generator().manual_seed(1)
    models = torch.rand(3, 1, 6, 6, generator=g)
    labels = torch.arange(3).repeat(10)
    directions = -models[labels] + 0.3 * torch.randn(30, 1, 6, 6, generator=g)
    res = compare_rows(pearson_rows(directions, models), labels, ["a", "b", "c"])
    assert res["all"]["difference"]["n"] == 30 and res["all"]["difference"]["mean"] < -0.5
    assert "LESS like" in res["all"]["verdict"]
    same = compare_rows(pearson_rows(torch.randn(30, 1, 6, 6, generator=g), models), labels, ["a", "b", "c"])
    assert same["all"]["own"]["n"] == 30 and "within noise" in same["all"]["verdict"]


def test_cli_visualize_compare_attack_untargeted_writes_files_that_parse(digits_run, tmp_path, capsys):
    ckpt = str(digits_run / "best.ckpt")
    out = tmp_path / "untargeted"
    assert main(["visualize", "--compare-attack", "--untargeted", "--checkpoint", ckpt, "--n", "4", "--steps", "3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "all classes, sign:" in printed and "untargeted_vs_class_models.json" in printed

    def no_constants(name):
        raise ValueError(f"not standard JSON: {name}")

    r = json.loads((out / "untargeted_vs_class_models.json").read_text(), parse_constant=no_constants)
    assert len(r["classes"]) == 10 and r["n_images"] == sum(r["images_per_class"].values()) <= 40
    for v in ("sign", "gradient", "applied"):
        assert set(r[v]["per_class"]) <= {c for c, k in r["images_per_class"].items() if k}  # applied: flipped only
        a = r[v]["all"]
        assert a["difference"]["n"] <= r["n_images"]
    assert set(r["sign"]["per_class"]) == {c for c, k in r["images_per_class"].items() if k}
    s = r["sign"]["all"]
    assert -1 <= s["own"]["mean"] <= 1 and s["difference"]["se"] > 0
    assert s["difference"]["mean"] == pytest.approx(s["own"]["mean"] - s["others"]["mean"], abs=1e-9)
    assert (out / "untargeted_vs_class_models.png").stat().st_size > 0
    one = tmp_path / "one"
    assert main(["visualize", "--compare-attack", "--untargeted", "--class", "3", "--checkpoint", ckpt, "--n", "3",
                 "--steps", "2", "--out", str(one)]) == 0
    r1 = json.loads((one / "untargeted_vs_class_models.json").read_text())
    assert r1["classes"] == ["3"] and list(r1["sign"]["per_class"]) == ["3"]
    assert len(r1["mean_direction_correlation"]["3"]) == 10  # against every class's model
    capsys.readouterr()
    assert main(["visualize", "--untargeted", "--checkpoint", ckpt]) == 2
    assert "mode of --compare-attack" in capsys.readouterr().err
    assert main(["visualize", "--class", "1", "--compare-attack", "--checkpoint", ckpt]) == 2
    assert "needs an IMAGE" in capsys.readouterr().err
    assert main(["visualize", "--compare-attack", "--untargeted"]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    assert main(["visualize", "--checkpoint", ckpt]) == 2
    assert "--class" in capsys.readouterr().err
    users = tmp_path / "users"
    users.mkdir()
    (users / "untargeted_vs_class_models.json").write_text("mine")
    assert main(["visualize", "--compare-attack", "--untargeted", "--checkpoint", ckpt, "--out", str(users)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (users / "untargeted_vs_class_models.json").read_text() == "mine"
