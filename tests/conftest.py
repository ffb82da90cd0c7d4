"Shared fixtures: the real publisher files in ../shared/data (present in this project's CI)."
from pathlib import Path
import pytest
import jif_fastai.cli as cli

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent/'shared'/'data'

@pytest.fixture(scope='session')
def real_data():
    "Path to ../shared/data, or skip when absent (e.g. a user's clone without it)."
    if not DATA.exists(): pytest.skip(f"real dataset files not found at {DATA}")
    return DATA

def in_process(capsys, *argv):
    "`jif_fastai.cli.main(argv)` in this process; (exit status, stdout, stderr)."
    try: code = cli.main(list(map(str, argv)))
    except SystemExit as e: code = e.code
    o, e = capsys.readouterr()
    return code, o, e

@pytest.fixture(scope='session')
def sample_model(tmp_path_factory):
    "(folder, validation rows): an untrained JIF-MMFA model on the embedded sample (resnet10t, 32 px), saved by export_jif."
    from jif_fastai.sample import sample_root
    from jif_fastai.data import load_pad_ufes20, kfold_splits
    from jif_fastai.dataloaders import ImageMetaDataLoaders
    from jif_fastai.learner import jif_learner
    from jif_fastai.inference import export_jif
    df, spec = load_pad_ufes20(sample_root())
    tr, va = kfold_splits(df, 4, seed=0)[0]
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=va, train_idx=tr, size=32, bs=32, seed=0, device='cpu')
    learn = jif_learner(dls, 'resnet10t', pretrained=False, fusion='mmfa', structure='jif')
    return export_jif(learn, tmp_path_factory.mktemp('sample_model')/'model'), df.iloc[va[:6]]
