"The README's usage example runs (CPU-sized: small backbone, no download, tiny images, one epoch)."
import json, warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def test_readme_usage_runs(tmp_path, monkeypatch):
    nb = json.loads((REPO/'nbs'/'index.ipynb').read_text())
    code = next(src for c in nb['cells'] if c['cell_type'] == 'code' and 'load_pad_ufes20' in (src := ''.join(c['source'])))
    for old, new in [("'resnet50',", "'resnet10t', pretrained=False,"), ('size=224', 'size=32'), ('fit_cosine(100', 'fit_cosine(1'),
                     ("sample_root()", "sample_root(n_images=60, size=48, cache=TMP)"),
                     ("'lesion.png'", "df.image[0]")]:
        assert old in code, f"README example changed: {old!r} not found; update this test"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('JIF_FASTAI_CACHE', str(tmp_path/'cache'))
    ns = {'TMP': tmp_path/'samples'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        exec(compile(code, 'README.md', 'exec'), ns)
    assert ns['label'] in ns['spec'].classes and abs(sum(ns['probs'].values()) - 1) < 1e-5
    assert set(ns['per_branch']) == {'joint', 'image', 'meta'}
    assert (tmp_path/'models'/'fold0'/'model.safetensors').exists()
