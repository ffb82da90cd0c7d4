"""One SGD step for every paper backbone x fusion x structure: finite loss, (B,K,C) logits, parameters change."""
import pytest, torch
from jif_fastai.encoders import PAPER_BACKBONES
from jif_fastai.fusion import FUSIONS
from jif_fastai.structures import create_model, get_structure

# 32 px is the smallest input all five backbones accept (final stride 32 -> a 1x1 map); spatial fusion behaviour
# (MetaNet/MetaBlock on larger maps) is tested in nbs/07_baselines.ipynb. Batch of 2: the least BatchNorm accepts.
CAT_CARDS, N_CONT, N_CLASSES, BS, SIZE = [3, 5, 2], 4, 6, 2, 32
FUSION_KW = {'mmfa': dict(dim=16, heads=2, n_tokens=2), 'concat': {}, 'metanet': dict(hidden=16), 'metablock': {}}
FUSION_NAMES = tuple(FUSION_KW)
CONFIGS = [(f, s) for f in FUSION_NAMES for s in ('jf', 'jif')] + [('mmfa', s) for s in ('late', 'image', 'meta')]


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Tiny tensors: one intra-op thread is as fast and avoids thread oversubscription on busy CI machines."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(BS, 3, SIZE, SIZE, generator=g)
    cats = torch.stack([torch.randint(0, c, (BS,), generator=g) for c in CAT_CARDS], 1)
    conts = torch.randn(BS, N_CONT, generator=g)
    y = torch.tensor([0, N_CLASSES - 1])
    return img, cats, conts, y


def test_registries():
    assert set(FUSION_NAMES) <= set(FUSIONS)


@pytest.mark.parametrize('backbone', PAPER_BACKBONES)
@pytest.mark.parametrize('fusion,structure', CONFIGS)
def test_train_step(backbone, fusion, structure, batch):
    torch.manual_seed(0)
    img, cats, conts, y = batch
    model = create_model(backbone, CAT_CARDS, N_CONT, N_CLASSES, fusion=fusion, structure=structure,
                         pretrained=False, meta_layers=(16,), **FUSION_KW[fusion]).train()
    K = len(get_structure(structure).branches)
    loss_func = model.loss_func(weight=torch.linspace(0.5, 2., N_CLASSES))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    head = model.heads[model.branches[0]][-1].weight
    before = head.detach().clone()
    out = model(img, cats, conts)
    assert out.shape == (BS, K, N_CLASSES)
    loss = loss_func(out, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad(); loss.backward(); opt.step()
    assert not torch.equal(before, head.detach())
    assert torch.isfinite(loss_func.activation(out.detach())).all()
