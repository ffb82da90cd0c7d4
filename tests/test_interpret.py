"Pictures of `jif_fastai.interpret`: PNG files from a tiny trained model, and Grad-CAM on two different timm backbones."
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from PIL import Image
from fastai.callback.hook import hook_output
from jif_fastai.sample import make_sample
from jif_fastai.data import load_pad_ufes20, kfold_splits
from jif_fastai.dataloaders import ImageMetaDataLoaders
from jif_fastai.learner import jif_learner
from jif_fastai.structures import create_model
from jif_fastai.interpret import grad_cam, save_fold_pictures, save_run_pictures


@pytest.fixture(scope='module')
def learn(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('interp')
    df, spec = load_pad_ufes20(make_sample(tmp/'sample', n_images=80, size=48, seed=0))
    tr, va = kfold_splits(df, 3, seed=0)[0]
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=va, train_idx=tr, size=32, bs=16, cache_dir=tmp/'cache', seed=0, device='cpu')
    learn = jif_learner(dls, 'resnet10t', pretrained=False, dim=32, heads=2, n_tokens=2)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 3e-3)
    return learn


def check_pngs(paths, out_dir):
    assert paths and all(p.parent == out_dir and p.suffix == '.png' for p in paths)
    for p in paths:
        with Image.open(p) as im:
            assert im.format == 'PNG' and min(im.size) > 100
            im.load()


def test_save_fold_pictures(learn, tmp_path):
    n_epochs = len(learn.recorder.values)
    paths = save_fold_pictures(learn, tmp_path/'fold_0', n_cam=3)
    assert [p.name for p in paths] == ['confusion.png', 'roc.png', 'training.png', 'attention.png', 'grad_cam.png']
    check_pngs(paths, tmp_path/'fold_0')
    assert len(learn.recorder.values) == n_epochs  # the training history is not reset


def test_save_run_pictures(tmp_path):
    rng = np.random.default_rng(0)
    res = pd.DataFrame([dict(fusion=f, structure='jif', backbone='resnet50', fold=k, bal_acc=rng.uniform(.5, .8), auc=rng.uniform(.8, .9))
                        for f in ('mmfa', 'concat', 'metanet', 'metablock') for k in range(3)])
    paths = save_run_pictures(res, tmp_path)
    assert [p.name for p in paths] == ['fusion_bal_acc.png', 'fusion_auc.png']
    check_pngs(paths, tmp_path)


@pytest.mark.parametrize('backbone,last', [('resnet10t', 'layer4'), ('mobilenetv2_100', 'bn2')])
def test_grad_cam_backbones(backbone, last):
    "Same map as the hook-based recipe on the backbone's last layer, for two architectures."
    torch.manual_seed(0)
    model = create_model(backbone, [3, 4], 2, 5, pretrained=False, meta_layers=(16,), dim=16, heads=2, n_tokens=2).eval()
    img, cats, conts = torch.randn(2, 3, 64, 64), torch.tensor([[1, 2], [0, 3]]), torch.randn(2, 2)
    cam = grad_cam(model, img, cats, conts, target=1)
    assert cam.shape == (2, 64, 64) and 0 <= cam.min() and cam.max() <= 1
    layer = getattr(model.img_encoder.model, last)
    with hook_output(layer, detach=False) as h:                  # the layer's output, still in the graph
        y = model(img, cats, conts)[:, 0, 1].sum()                 # joint branch, class 1
        A = h.stored; G, = torch.autograd.grad(y, A)
    ref = F.interpolate(F.relu((G.mean((2, 3), keepdim=True) * A).sum(1, keepdim=True)), size=(64, 64), mode='bilinear')[:, 0]
    ref = ref / ref.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    torch.testing.assert_close(cam, ref, atol=1e-4, rtol=1e-4)
    one = grad_cam(model, img[0], cats[0], conts[0], target=1, branch='image')
    assert one.shape == (64, 64)
