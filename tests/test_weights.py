"""The genuine ImageNet weights in ../shared/weights (tf_efficientnet_lite0): loaded offline by file, fed with the
backbone's own preprocessing, recorded by name + sha256 (never by path), and usable from the CLI (`--weights-file`)."""
import json, os, subprocess, sys, shutil
from pathlib import Path
import pytest, timm, torch
from PIL import Image
from jif_fastai.encoders import ImageEncoder
from jif_fastai.core import file_sha256

LITE0_SHA = '384371dbd49f5bd24d4e89f607c22e2b1babbdb5c58d86a1cf3279ac1d490191'   # ../shared/weights/README.md
EXE = shutil.which('jif-fastai', path=str(Path(sys.executable).parent)) or 'jif-fastai'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

@pytest.fixture(scope='module')
def lite0(real_data):
    f = real_data.parent/'weights'/'tf_efficientnet_lite0_timm.safetensors'
    if not f.is_file(): pytest.skip(f"{f} not found")
    return f

def _photo(model, stats) -> torch.Tensor:
    "matplotlib's sample photo (Grace Hopper) through timm's eval transform for `model`, normalised with `stats`: (1,3,S,S)."
    import matplotlib.cbook
    im = Image.open(matplotlib.cbook.get_sample_data('grace_hopper.jpg')).convert('RGB')
    cfg = {**timm.data.resolve_model_data_config(model), 'mean': stats[0], 'std': stats[1]}
    return timm.data.create_transform(**cfg)(im)[None]

def test_lite0_file_is_genuine_and_its_stats_matter(lite0):
    assert file_sha256(lite0) == LITE0_SHA
    full = timm.create_model('tf_efficientnet_lite0', pretrained=True, pretrained_cfg_overlay=dict(file=str(lite0))).eval()
    enc = ImageEncoder('tf_efficientnet_lite0', weights_file=lite0).eval()
    assert enc.weights == dict(source='file', file=lite0.name, sha256=LITE0_SHA)
    dc = enc.data_config                                           # the one source of a backbone's stats (what jif_learner sets)
    pre = dict(mean=list(dc['mean']), std=list(dc['std']), size=dc['input_size'][-1])
    assert (pre['mean'], pre['std'], pre['size']) == ([.5]*3, [.5]*3, 224)
    assert ImageEncoder('tf_efficientnet_lite0', pretrained=False).data_config == dc   # the same without the weights file
    x = _photo(full, (pre['mean'], pre['std']))
    with torch.no_grad():
        torch.testing.assert_close(enc(x), full.forward_head(full.forward_features(x), pre_logits=True))   # our encoder = timm's backbone
        top3 = full(x).softmax(-1)[0].topk(3).indices.tolist()
        p_imagenet_stats = full(_photo(full, ((.485, .456, .406), (.229, .224, .225)))).softmax(-1)[0]
    assert set(top3) == {400, 667, 652}, top3     # academic gown, mortarboard, military uniform (the README's check)
    assert p_imagenet_stats[400] < full(x).softmax(-1)[0, 400]   # the wrong stats make the right answer less likely

def test_cli_weights_file_frozen(lite0, tmp_path):
    out = tmp_path/'run'
    p = subprocess.run([EXE, 'train', '--backbone', 'tf_efficientnet_lite0', '--weights-file', str(lite0), '--frozen', '--views', '2',
                        '--folds', '2', '--epochs', '2', '--size', '32', '--no-pictures', '--out', str(out)],
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f'weights {lite0.name} (frozen)' in p.stdout
    text = (out/'run.json').read_text(); cfg = json.loads(text)['config']
    assert cfg['weights'] == dict(source='file', file=lite0.name, sha256=LITE0_SHA) and cfg['frozen'] and cfg['views'] == 2
    assert str(lite0.parent) not in text                          # the file's name and hash, never its path
    mcfg = json.loads((out/'models'/'fold_0'/'config.json').read_text())
    assert mcfg['backbone_weights'] == dict(source='file', file=lite0.name, sha256=LITE0_SHA)
    assert mcfg['stats'] == [[.5]*3, [.5]*3]                      # lite0's own normalisation travels with the model
    bad = subprocess.run([EXE, 'train', '--weights-file', str(tmp_path/'nope.safetensors')], env=ENV, capture_output=True, text=True)
    assert bad.returncode == 2 and 'no such file' in bad.stderr
