"""The committed results (results/, made by `make results`) are honest: they carry the settings hash this code
produces, and the canary (one configuration on a fixed 420-image slice of HAM10000, one CPU thread) re-runs to the
recorded numbers. Every 'mean ± std' the book's Results page quotes appears in the generated tables."""
import json, re
from pathlib import Path
import pytest, torch
from jif_fastai.results import RESULTS_SETTINGS, settings_hash, canary

REPO = Path(__file__).resolve().parents[1]
RES = REPO/'results'

@pytest.fixture(scope='module')
def manifest():
    f = RES/'manifest.json'
    assert f.is_file(), f"{f} is missing: run `make results` and commit results/"
    return json.loads(f.read_text())

def test_settings_hash_current(manifest):
    assert manifest['settings_hash'] == settings_hash(manifest['settings']), "manifest.json was edited by hand"
    assert manifest['settings_hash'] == settings_hash(), (
        "results/ were made with settings (or code defaults) this code no longer has: run `make results` again and commit results/")
    assert manifest['settings'] == json.loads(json.dumps(RESULTS_SETTINGS))

def test_canary_reproduces(manifest, real_data, tmp_path):
    weights = real_data.parent/'weights'/RESULTS_SETTINGS['weights']
    if not weights.is_file(): pytest.skip(f"{weights} not found")
    got = canary(real_data/'ham10000', weights, tmp_path)
    want = manifest['canary']
    assert sorted(got) == sorted(want)
    for fold, m in want.items():
        for k, v in m.items(): assert got[fold][k] == pytest.approx(v, abs=1e-6), (fold, k, got[fold][k], v)

def test_book_quotes_generated_numbers():
    page = (REPO/'book'/'findings.md').read_text()
    tables = ''.join(f.read_text() for f in RES.glob('*.md'))
    quoted = re.findall(r'\d\.\d{3} ± \d\.\d{3}', page)
    assert quoted, "the Results page quotes no measured number"
    assert all(q in tables for q in quoted), [q for q in quoted if q not in tables]
    for name in ('ham10000_summary.md', 'ham10000_paired.md', 'ham10000_missing.md', 'pad_ufes20_meta.md'):
        assert f'../results/{name}' in page, f"the Results page does not include results/{name}"
