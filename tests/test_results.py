"""The committed results (results/, made by `make results`) are honest: they carry the settings hash that their recorded
settings and code defaults give, none of those defaults changed since, and the canary (JIF-MMFA on a fixed 420-image
slice of HAM10000) re-runs within its recorded, measured tolerance. Every 'mean ± std' the book's Findings page quotes
appears in the generated tables."""
import json, re, shutil
from pathlib import Path
import pytest
from jif_fastai.results import (RESULTS_SETTINGS, settings_hash, changed_defaults, canary, canary_problems, canary_tolerance)

REPO = Path(__file__).resolve().parents[1]
RES = REPO/'results'

@pytest.fixture(scope='module')
def manifest():
    f = RES/'manifest.json'
    assert f.is_file(), f"{f} is missing: run `make results` and commit results/"
    return json.loads(f.read_text())

def test_settings_hash_current(manifest):
    assert manifest['settings_hash'] == settings_hash(manifest['settings'], manifest['code_defaults']), "manifest.json was edited by hand"
    assert manifest['settings'] == json.loads(json.dumps(RESULTS_SETTINGS)), (
        "RESULTS_SETTINGS changed since results/ were made: run `make results` again and commit results/")
    # A default that changed (or a parameter that went away) changes what results/ mean. A parameter added since is let
    # through: its default must keep the old behaviour, which no hash can see, so the canary below is what checks it.
    assert not changed_defaults(manifest['code_defaults']), (
        f"code defaults changed since results/ were made ({'; '.join(changed_defaults(manifest['code_defaults']))}): run `make results` again")

def test_canary_tolerance_is_the_measured_one(manifest):
    c = manifest['canary']
    assert c['tolerance'] == canary_tolerance(c['spread'], c['one_flip'], len(c['pred']), len(c['folds'])), "the tolerance was edited by hand"
    assert len(c['spread']) >= 3 and 'flags' in c['cpu'], "the canary's spread and CPU were not recorded"

@pytest.fixture(scope='module')
def ham(real_data):
    weights = real_data.parent/'weights'/RESULTS_SETTINGS['weights']
    if not weights.is_file(): pytest.skip(f"{weights} not found")
    return real_data/'ham10000', weights

def test_canary_reproduces(manifest, ham, tmp_path):
    """Within the recorded tolerance, not to the last bit: on a CPU with other vector units (AVX-512/AMX vs the AVX2
    that recorded it) oneDNN and ATen pick other kernels and a prediction near a tie can flip (one flip moves a fold's
    balanced accuracy by about 0.012). The tolerance is 5x the largest deviation the canary showed under other kernel
    settings on the recording machine (other thread count, ATen without vector kernels, oneDNN limited to SSE4.1),
    and never less than two flipped predictions per fold or 0.01 AUC (see the results chapter)."""
    root, weights = ham
    got = canary(root, weights, tmp_path, cache_dir=tmp_path/'cache')
    assert not canary_problems(got, manifest['canary']), canary_problems(got, manifest['canary'])
    # The check can fail: half the learning rate (same cached backbone features, so only training differs) must trip it.
    # Measured on the recording machine: 3 flips in a fold (0.036 balanced accuracy) and 7 % of the predictions changed.
    slow = canary(root, weights, tmp_path/'half-lr', {**RESULTS_SETTINGS, 'lr': RESULTS_SETTINGS['lr']/2}, cache_dir=tmp_path/'cache')
    assert canary_problems(slow, manifest['canary'])

def test_book_quotes_generated_numbers():
    page = (REPO/'book'/'findings.md').read_text()
    tables = ''.join(f.read_text() for f in sorted(RES.rglob('*.md')))   # the results tables and the committed run folders' own (results/runs/)
    quoted = re.findall(r'(?<![\d.])([+\-−]?\d\.\d{3} ± \d\.\d{3})', page)
    assert quoted, "the Results page quotes no measured number"
    # with its sign (the page writes −, the tables -): '+0.135 ± 0.035' must not pass for '-0.135 ± 0.035', nor an unsigned one
    in_tables = lambda q: re.search(('' if q[0] in '+-' else r'(?<![-\d.])') + re.escape(q), tables)
    missing = [q for q in quoted if not in_tables(q.replace('−', '-'))]
    assert not missing, missing
    for name in ('ham10000_summary.md', 'ham10000_paired.md', 'ham10000_missing.md', 'pad_ufes20_meta.md',
                 'ham10000_decision.md', 'ham10000_decision_paired.md', 'ham10000_calibration.md', 'ham10000_reliability.png',
                 'ham10000_trainable_progress.md'):
        assert f'../results/{name}' in page, f"the Results page does not include results/{name}"

def test_trainable_protocol_runs_end_to_end(ham, tmp_path):
    """`make results-trainable` (about 34 h on a 2-core CPU at full size, not run by the tests) on a small slice: 12
    images per class, 2 folds of 2 epochs at 64 px, the last lite0 stage trained on cached stage maps. Checks the code
    path and the tables it writes, not any number: at this size the numbers mean nothing."""
    from jif_fastai.results import run_trainable_results, TRAINABLE_RUNS, TRAINABLE_SEEDS
    root, weights = ham
    s = {**RESULTS_SETTINGS, 'folds': 2, 'epochs': 2, 'size': 64, 'bs': 16}
    summary = run_trainable_results(root, weights, tmp_path/'out', tmp_path/'runs', tmp_path/'cache', s, per_class=12)
    assert len(summary) == len(TRAINABLE_RUNS) and 'JIF-MMFA' in set(summary.config)
    for name in ('summary', 'paired', 'seeds', 'missing'): assert (tmp_path/'out'/f'ham10000_trainable_{name}.md').is_file(), name
    seeds = (tmp_path/'out'/'ham10000_trainable_seeds.md').read_text()
    assert seeds.count('\n') == 2 + 3 and all(f'seed {k}' in seeds for k in (0, *TRAINABLE_SEEDS))   # header + rule + 3 configurations
    run = json.loads((tmp_path/'runs'/'ham10000-trainable'/'tf_efficientnet_lite0-mmfa-jif'/'run.json').read_text())['config']
    assert (run['train_from'], run['model_kw']) == (-1, {'meta_layers': [], 'meta_ps': 0.0})
    rec, folds = json.loads((tmp_path/'out'/'ham10000_trainable_run.json').read_text()), list((tmp_path/'runs').glob('*/*/folds/fold_*.json'))
    assert len(folds) == 2 * (len(TRAINABLE_RUNS) + 3 * len(TRAINABLE_SEEDS))   # every fold of the grid and of the seeds ...
    assert rec['fold_seconds'] == round(sum(json.loads(f.read_text())['seconds'] for f in folds)) > 0   # ... in the time it records
    assert (tmp_path/'out'/'ham10000_trainable_progress.md').read_text().count('\n') == 2 + len(TRAINABLE_RUNS) + 3 * len(TRAINABLE_SEEDS)
    stale = tmp_path/'runs'/'ham10000-trainable-seed9'/'old-run'/'folds'; stale.mkdir(parents=True)   # a folder it did not run
    (stale/'fold_0.json').write_text('{"seconds": 999}')
    for m in (tmp_path/'runs').glob('*/*/models'): shutil.rmtree(m)   # as committed (.gitignore): records and predictions, no models
    run_trainable_results(root, weights, tmp_path/'out', tmp_path/'runs', tmp_path/'cache', s, per_class=12)   # resumed: nothing to train
    again = json.loads((tmp_path/'out'/'ham10000_trainable_run.json').read_text())
    assert again['fold_seconds'] == rec['fold_seconds'] and again['seconds'] < rec['seconds']   # the pieces' time, not this call's

def test_committed_trainable_folds_are_its_progress_table(ham, tmp_path):
    """The trainable protocol's run folders are committed without the models (results/runs/), so the next session
    resumes them. Their configuration must still be the protocol's (a change to `TRAINABLE` or the results settings
    since they ran fails here: rerun, do not mix), and results/ham10000_trainable_progress.md must be what their fold
    records give (`make results-trainable-progress`). The scores are recomputed from the stored probabilities: on
    another CPU a weighted vote can round differently in the last bit, and a near-tie that flips moves a fold's balanced
    accuracy by up to 1/(7 x the smallest class of a test fold, 23 images) = 0.006, so numbers match within 0.01."""
    from jif_fastai.results import write_trainable_progress, trainable_configs, TRAINABLE_GRIDS
    runs = RES/'runs'
    want = {(TRAINABLE_GRIDS[s], c.grid_name): c.record() for s in TRAINABLE_GRIDS for c in trainable_configs(weights_file=ham[1], seed=s)}
    dirs = sorted(f.parent for f in runs.glob('*/*/run.json'))
    assert dirs, f"{runs} holds no run folder of the trainable protocol"
    for d in dirs:
        got = json.loads((d/'run.json').read_text())['config']
        assert (d.parent.name, d.name) in want, f"{d}: not a run of the trainable protocol"
        moved = {k: (got.get(k), v) for k, v in want[d.parent.name, d.name].items() if got.get(k) != json.loads(json.dumps(v))}
        assert not moved, f"{d} ran with other settings than the protocol's now (there, now): {moved}"
    cells = lambda md: [[c.strip() for c in l.strip().strip('|').split('|')] for l in md.splitlines()[2:]]
    shutil.copy(RES/'ham10000_folds.csv', tmp_path)   # the frozen grid it pairs with; the table is rewritten by the one writer, into tmp_path
    write_trainable_progress(runs, tmp_path); got = cells((tmp_path/'ham10000_trainable_progress.md').read_text())
    committed = cells((RES/'ham10000_trainable_progress.md').read_text())
    assert [r[:3] for r in got] == [r[:3] for r in committed], "results/ham10000_trainable_progress.md is stale: run `make results-trainable-progress`"
    nums = lambda rows: [float(x) for r in rows for c in r[3:] for x in re.findall(r'-?\d+(?:\.\d+)?', c)]
    a, b = nums(got), nums(committed)
    assert len(a) == len(b) and all(abs(x - y) <= .01 for x, y in zip(a, b)), "results/ham10000_trainable_progress.md is stale: run `make results-trainable-progress`"

def test_progress_without_finished_folds_is_one_line(tmp_path):
    """`--progress` on a folder where nothing has finished: a one-line error naming the folder, no table written."""
    import subprocess, sys
    r = subprocess.run([sys.executable, '-m', 'jif_fastai.results', '--progress', '--runs', str(tmp_path/'runs'), '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(f"results: {tmp_path/'runs'}: no finished fold"), r.stderr
    assert not (tmp_path/'ham10000_trainable_progress.md').exists()
