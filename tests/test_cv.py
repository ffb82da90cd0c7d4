"""`jif_fastai.cv`: a killed cross-validation resumes to the uninterrupted result; changed configurations are refused;
cross-fitted weight search; the official split; learned loss weights. Tiny settings (32 px, 2 folds) for 2 CPU cores."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from jif_fastai.cv import run_cv, drop_metadata, RunConfigError, load_folds, fold_done
from jif_fastai.datasets import load_dataset
from jif_fastai.tables import choose_weights
from jif_fastai.structures import UncertaintyJIFLoss

TINY = dict(folds=2, epochs=2, size=32, bs=32, missing_fracs=(0., .5), progress=False, pictures=False)
RUN = ("import sys, torch, warnings; warnings.simplefilter('ignore'); torch.set_num_threads(1)\n"
       "from jif_fastai.cv import run_cv\n"
       f"run_cv(out_dir=sys.argv[1], **{TINY!r})\n")
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}

def start(out):
    "A cross-validation of the sample into `out` in a child process (its own process group)."
    return subprocess.Popen([sys.executable, '-c', RUN, str(out)], env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

def kill_when(proc, cond, timeout=300):
    "SIGKILL `proc`'s process group as soon as `cond()` holds; fail if it ends first."
    t0 = time.time()
    while not cond():
        if proc.poll() is not None: pytest.fail(f"run ended before the kill point:\n{proc.stdout.read().decode()[-2000:]}")
        if time.time() - t0 > timeout: os.killpg(proc.pid, signal.SIGKILL); pytest.fail("kill point not reached in time")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()

def finish(out):
    proc = start(out); outp = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, outp[-3000:]

def progress(out):
    try: return json.loads((Path(out)/'progress.json').read_text())
    except (FileNotFoundError, json.JSONDecodeError): return {}

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted run."
    out = tmp_path_factory.mktemp('cv')/'ref'
    finish(out)
    return out

def test_resume_after_kill(reference, tmp_path):
    out = tmp_path/'run'
    kill_when(start(out), lambda: fold_done(out, 0))                          # killed between folds
    rec0 = (out/'folds'/'fold_0.json').read_bytes()
    assert not fold_done(out, 1)
    kill_when(start(out), lambda: progress(out).get('fold') == 1)           # killed mid-fold: fold 1 after an epoch
    assert not fold_done(out, 1) and (out/'folds'/'fold_0.json').read_bytes() == rec0
    finish(out)                                                              # resumed to the end
    assert (out/'folds'/'fold_0.json').read_bytes() == rec0                 # the finished fold was not redone
    a, b = pd.read_csv(reference/'results.csv'), pd.read_csv(out/'results.csv')
    pd.testing.assert_frame_equal(a.drop(columns='minutes'), b.drop(columns='minutes'), check_exact=False, rtol=1e-6)
    for ra, rb in zip(load_folds(reference), load_folds(out)):
        np.testing.assert_allclose(ra['probs'], rb['probs'], atol=1e-6)
        np.testing.assert_allclose(np.array(ra['history']), np.array(rb['history']), atol=1e-6)

def test_rerun_skips_and_mismatch_refused(reference):
    stamps = {f: f.stat().st_mtime_ns for f in (reference/'folds').iterdir()}
    res = run_cv(out_dir=reference, **TINY)                                   # same configuration: nothing to train
    assert {f: f.stat().st_mtime_ns for f in (reference/'folds').iterdir()} == stamps and list(res.fold) == ['0', '1', 'mean', 'std']
    with pytest.raises(RunConfigError, match="epochs: 2 there, 3 now"): run_cv(out_dir=reference, **{**TINY, 'epochs': 3})
    with pytest.raises(RunConfigError, match="structure: 'jif' there, 'image' now"):
        run_cv(out_dir=reference, structure='image', **TINY)
    df, spec = load_dataset('pad-ufes-20')
    with pytest.raises(RunConfigError, match="data: "): run_cv((df.iloc[:-10], spec), out_dir=reference, **TINY)

def test_not_a_run_folder(tmp_path):
    (tmp_path/'mine.txt').write_text('x')
    with pytest.raises(RunConfigError, match='not a jif-fastai run folder'): run_cv(out_dir=tmp_path, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ['mine.txt']

def test_unknown_names_refused_before_training(tmp_path):
    for kw, msg in [(dict(fusion='mfa'), "unknown fusion 'mfa'"), (dict(structure='jjf'), "unknown structure"),
                    (dict(backbone='resnet51'), 'Unknown timm backbone'), (dict(loss_weighting='x'), 'unknown loss weighting')]:
        with pytest.raises(ValueError, match=msg): run_cv(out_dir=tmp_path/'x', **{**TINY, **kw})
    assert not (tmp_path/'x').exists()

def test_crossfit_never_uses_own_labels():
    "Fold 0's own predictions favour branch 0, the other folds' favour branch 1: cross-fitting follows the others."
    rng = np.random.default_rng(0)
    def rec(good):
        y = rng.integers(0, 2, 100); right, wrong = np.eye(2)[y]*.8 + .1, np.eye(2)[1 - y]*.8 + .1
        probs = np.stack([right, wrong] if good == 0 else [wrong, right], 1)
        return dict(y=y, probs=probs)
    (x0, i0), (x1, i1), _ = choose_weights([rec(0), rec(1), rec(1)])
    assert x0.argmax() == 1 and i0.argmax() == 0     # cross-fitted: from folds 1, 2; in-fold: from fold 0 itself
    assert x1.argmax() == 1 and i1.argmax() == 1

def test_drop_metadata_fraction_and_nesting():
    df, spec = load_dataset('pad-ufes-20')
    known = df[spec.meta_names].notna().to_numpy()
    prev = known
    for f in (.1, .3, .7):
        k = drop_metadata(df, spec.meta_names, f, seed=1)[spec.meta_names].notna().to_numpy()
        assert abs(k.sum() - (1 - f) * known.sum()) <= 1 and (k <= prev).all()
        prev = k

def test_official_split_and_uncertainty_weighting(tmp_path):
    "The official protocol (train / pick on valid / report on test) on a sample with a split column, with learned loss weights."
    torch.set_num_threads(1)
    df, spec = load_dataset('pad-ufes-20')
    g = df.group.map({g: i % 4 for i, g in enumerate(df.group.unique())})
    df = df.assign(split=np.where(g < 2, 'train', np.where(g == 2, 'valid', 'test')))
    res = run_cv((df, spec), split='official', loss_weighting='uncertainty', out_dir=tmp_path, **{**TINY, 'folds': 1})
    assert list(res.fold) == ['0', 'mean', 'std']
    (r,) = load_folds(tmp_path)
    assert r['n_test'] == (df.split == 'test').sum() and 'sel_probs' in r and r['best_epoch'] in (0, 1)
    assert r['loss_weights'] != pytest.approx([1., .5, .5], abs=1e-4)       # learned, moved away from the start
    assert res.w_xfit[0] != ''                                                # weights chosen on valid
    loss = UncertaintyJIFLoss(('joint', 'image', 'meta'), (1., .5, .5))
    assert loss.weights == pytest.approx([1., .5, .5])
