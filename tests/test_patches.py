"Patches and overrides of fastai internals: scoped, restored, version-checked (issue 13, item 7)."
import warnings
import numpy as np, pytest, torch, fastai
import torch.distributed as dist
import fastai.vision.augment as fa_aug
from fastai.distributed import DistributedDL
from jif_fastai import core as jc
from jif_fastai.core import FASTAI_TESTED, FastaiVersionError, fastai_mismatch, patch_fastai
from jif_fastai.dataloaders import sync_free_augment, _grid_sample_sync_free, ImageMetaDataLoaders, DeviceBatchDL, ImageMetaDL
from jif_fastai.distributed import GlooSafeDistributedDL, ddp_loaders
from jif_fastai.sample import make_sample
from jif_fastai.data import load_pad_ufes20

STOCK = fa_aug._grid_sample

@pytest.fixture
def other_fastai(monkeypatch):
    "A fastai version the patches were not written for (and no mismatch reported yet)."
    monkeypatch.setattr(fastai, '__version__', '2.99.0')
    monkeypatch.setattr(jc, '_warned', set())

@pytest.fixture(scope='module')
def dls(tmp_path_factory):
    df, spec = load_pad_ufes20(make_sample(tmp_path_factory.mktemp('s')/'sample', n_images=40, size=32, seed=0))
    return ImageMetaDataLoaders.from_df(df, spec, valid_idx=np.arange(30, 40), bs=8, size=8, cache_size=9, seed=0,
                                        images=np.random.default_rng(0).integers(0, 255, (40, 3, 9, 9), dtype=np.uint8), device='cpu')

def test_installed_fastai_is_tested():
    assert '.'.join(fastai.__version__.split('.')[:2]) in FASTAI_TESTED
    assert fastai_mismatch(fa_aug, '_grid_sample', _grid_sample_sync_free) is None
    assert fastai_mismatch(DistributedDL, '_broadcast', GlooSafeDistributedDL._broadcast) is None

def test_sync_free_scoped_and_restored():
    with sync_free_augment(): assert fa_aug._grid_sample is _grid_sample_sync_free
    assert fa_aug._grid_sample is STOCK
    with pytest.raises(ZeroDivisionError):
        with sync_free_augment(): 1/0
    assert fa_aug._grid_sample is STOCK                  # restored on an error too
    with sync_free_augment():
        with sync_free_augment(): pass                   # nested (bench + SyncFree): the outer patch survives the inner
        assert fa_aug._grid_sample is _grid_sample_sync_free
    assert fa_aug._grid_sample is STOCK

def test_sync_free_falls_back_on_other_fastai(other_fastai):
    with pytest.warns(UserWarning, match=r"fastai 2\.99\.0 is installed.*pip install 'fastai~=2\.8\.0'.*fastai's own _grid_sample runs"):
        with sync_free_augment():
            assert fa_aug._grid_sample is STOCK          # unpatched: fastai's own function, so the same results
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with sync_free_augment(): pass                   # warned once, not per batch

def test_strict_patch_raises_on_other_fastai(other_fastai):
    with pytest.raises(FastaiVersionError, match=r"^jif_fastai\.dataloaders\._grid_sample_sync_free replaces fastai's "
                       r"fastai\.vision\.augment\._grid_sample, written for fastai 2\.8\.x, but fastai 2\.99\.0 is installed"):
        with patch_fastai(fa_aug, '_grid_sample', _grid_sample_sync_free): pass
    assert fa_aug._grid_sample is STOCK

def test_missing_or_changed_private(monkeypatch):
    monkeypatch.setattr(jc, '_warned', set())
    monkeypatch.setattr(fa_aug, '_grid_sample', lambda x, coords, mode='bilinear': x)   # fastai changed its signature
    with pytest.raises(FastaiVersionError, match='differs from'):
        with patch_fastai(fa_aug, '_grid_sample', _grid_sample_sync_free): pass
    with pytest.warns(UserWarning, match='differs from'):
        with sync_free_augment(): assert fa_aug._grid_sample is not _grid_sample_sync_free
    monkeypatch.delattr(fa_aug, '_grid_sample')                                        # fastai removed it
    with pytest.raises(FastaiVersionError, match='has no fastai.vision.augment._grid_sample'):
        with patch_fastai(fa_aug, '_grid_sample', _grid_sample_sync_free): pass

def test_loaders_built_as_their_types(dls):
    assert type(dls) is ImageMetaDataLoaders and dls.on_device
    assert [type(dl) for dl in (*dls.loaders, dls.test_dl([0, 1]))] == [DeviceBatchDL]*3
    assert all(dl.arrays is dls.train.arrays for dl in dls.loaders)
    assert dls.device_bytes == sum(a.nbytes for a in dls.host_arrays)

def test_import_leaves_fastai_distributed_alone():
    assert DistributedDL._broadcast.__module__ == 'fastai.distributed'

def test_ddp_loaders_raise_on_other_fastai(dls, other_fastai, monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '2'); monkeypatch.setenv('RANK', '0')
    plain = list(dls.loaders)
    with pytest.raises(FastaiVersionError, match=r"DistributedDL\._broadcast.*fastai 2\.99\.0 is installed"):
        with ddp_loaders(dls): pass
    assert dls.loaders == plain

def test_ddp_loaders_one_gloo_process(dls, tmp_path, monkeypatch):
    "One process under gloo: the wrapped loaders broadcast on the CPU and give the plain loaders' batches; restored after."
    monkeypatch.setenv('WORLD_SIZE', '1'); monkeypatch.setenv('RANK', '0')
    plain = list(dls.loaders)
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        with ddp_loaders(dls):
            assert [type(dl) for dl in dls.loaders] == [GlooSafeDistributedDL]*2 and [dl.dl for dl in dls.loaders] == plain
            assert dls.train._broadcast([3, 1, 2], 0) == [3, 1, 2]
            got = [b[3] for b in dls.valid]
        torch.testing.assert_close(torch.cat(got), torch.cat([b[3] for b in dls.valid]))
    finally: dist.destroy_process_group()
    assert dls.loaders == plain

def test_overrides_refuse_other_fastai(other_fastai):
    "ForeachSGD reads fastai's optimiser state and DeviceAvgSmoothLoss overrides AvgSmoothLoss.accumulate: both are checked."
    from jif_fastai.callbacks import ForeachSGD, SyncFree
    with pytest.raises(FastaiVersionError, match=r"ForeachSGD\.step replaces fastai's fastai\.optimizer\.Optimizer\.step.*2\.99\.0"):
        ForeachSGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(FastaiVersionError, match=r"DeviceAvgSmoothLoss\.accumulate replaces fastai's .*AvgSmoothLoss\.accumulate"):
        SyncFree().before_fit()

def test_overrides_refuse_changed_signature(monkeypatch):
    import fastai.optimizer as fo
    from jif_fastai.callbacks import ForeachSGD
    monkeypatch.setattr(fo.Optimizer, 'zero_grad', lambda self, set_to_none=True: None)   # ForeachSGD checks this itself, not through patch_fastai
    with pytest.raises(FastaiVersionError, match='differs from'): ForeachSGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
