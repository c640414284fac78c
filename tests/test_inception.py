"""Inception-v3, Inception-v4 and Inception-ResNet-v2: published sizes, torchvision as the oracle for
v3 (parameters, MACs, outputs), forward and backward at 299x299 and in the small-input variants."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import create_model
from cnnlab.analysis.complexity import count_macs, count_params
from cnnlab.models.layers import ScaledResidual
from tests.test_architectures import _meta, _one_thread  # noqa: F401  (one thread, meta-device builds)


def _tv_v3(**kw) -> nn.Module:
    import torchvision

    return torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, **kw)


def test_inception_v3_params_and_macs_equal_torchvision():
    with torch.device("meta"):
        peer = _tv_v3()
    ours = _meta("inception-v3", num_classes=1000)
    assert count_params(ours) == count_params(peer) == 23_834_568
    assert count_macs(ours, (3, 299, 299)) == count_macs(peer, (3, 299, 299))


def test_inception_v3_computes_torchvisions_function():
    """Same layout, same order: torchvision's weights copied in position by position give the same
    logits (eval mode, 75x75, the smallest input the 299 stem accepts)."""
    torch.manual_seed(0)
    peer = _tv_v3(num_classes=10).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a swapped branch would show
        for m in peer.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours = create_model("inception-v3", num_classes=10).eval()
    theirs, mine = list(peer.state_dict().values()), ours.state_dict()
    assert [t.shape for t in theirs] == [t.shape for t in mine.values()]
    ours.load_state_dict(dict(zip(mine, theirs)))
    x = torch.rand(2, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,published", [("inception-v4", 42.7e6), ("inception-resnet-v2", 55.8e6)])
def test_v4_and_inception_resnet_v2_match_published_sizes(name, published):
    """Szegedy et al. 2017 / timm: 42.68M and 55.84M at 1000 classes (exactly timm's counts)."""
    params = count_params(_meta(name, num_classes=1000))
    assert abs(params - published) / published < 0.01
    assert params == {"inception-v4": 42_679_816, "inception-resnet-v2": 55_843_464}[name]


@pytest.mark.parametrize("name", ["inception-v3", "inception-v4", "inception-resnet-v2"])
def test_small_input_variants_keep_the_parameters_and_resolutions(name):
    """The -cifar stems change strides, padding and pools, never a weight; 32 -> 32, 15, 7 and 28 -> 28, 13, 6."""
    assert count_params(_meta(name + "-cifar", num_classes=1000)) == count_params(_meta(name, num_classes=1000))
    model = _meta(name + "-cifar", in_chans=1)
    for size, last in ((32, 7), (28, 6)):
        grid = []
        handle = model.head.register_forward_hook(lambda m, inp, out: grid.append(inp[0].shape[-1]))
        model(torch.zeros(1, 1, size, size, device="meta"))
        handle.remove()
        assert grid == [last]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inception-v3", "inception-v4", "inception-resnet-v2"])
def test_forward_backward_at_299(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
    out = model(torch.rand(1, 3, 299, 299))
    assert out.shape == (1, 5)
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name,kw", [("inception-v3-cifar", {}),
                                     ("inception-v4-cifar", dict(width=0.25, blocks=(1, 1, 1))),
                                     ("inception-resnet-v2-cifar", dict(width=0.25, blocks=(1, 1, 1)))])
@pytest.mark.parametrize("size,chans", [(32, 3), (28, 1)])
def test_small_variants_forward_backward(name, kw, size, chans):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=chans, **kw).train()
    out = model(torch.rand(2, chans, size, size))
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_auxiliary_head_adds_its_weighted_loss_in_training():
    """aux_logits=True: training returns (logits, aux, weight) and the engine's loss is main + weight * aux."""
    from cnnlab.train.engine import task_loss
    from cnnlab.train.tasks import ClassificationTask

    torch.manual_seed(0)
    model = create_model("inception-v3-cifar", num_classes=4, aux_logits=True, aux_weight=0.3).train()
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 3])
    logits, aux, weight = model(x)
    task = ClassificationTask(4)
    main, loss = task_loss(task, (logits, aux, weight), y)
    assert main is logits and weight == 0.3
    torch.testing.assert_close(loss, task.loss(logits, y) + 0.3 * task.loss(aux, y))
    assert model.eval()(x).shape == (2, 4)  # no auxiliary output at inference


def test_residual_scale_multiplies_the_branch_before_the_addition():
    branch = nn.Conv2d(2, 2, 1)
    x = torch.randn(1, 2, 3, 3)
    block = ScaledResidual(branch, scale=0.2, act=None)
    torch.testing.assert_close(block(x), x + 0.2 * branch(x))
    model = _meta("inception-resnet-v2-cifar", width=0.25, blocks=(2, 1, 1), residual_scale=0.3)
    scales = [m.scale for m in model.modules() if isinstance(m, ScaledResidual)]
    assert scales == [0.3] * 5  # 2 + 1 + 1 blocks and the final un-activated one
    published = [m.scale for m in _meta("inception-resnet-v2").modules() if isinstance(m, ScaledResidual)]
    assert published == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]


def test_bad_width_and_blocks_are_clear_errors():
    from cnnlab.core.errors import CnnlabError

    with pytest.raises(CnnlabError, match="width"):
        create_model("inception-v4-cifar", width=0)
    with pytest.raises(CnnlabError, match="blocks"):
        create_model("inception-resnet-v2-cifar", blocks=(1, 2))
