"""Faults: damaged caches, concurrent writers, crashes mid-write, determinism, and the two security promises.

* The presized cache detects truncated, corrupt (checksum) and wrong-shaped entries and rebuilds them; two processes
  filling one cache at once both finish with correct files; a crash mid-write leaves no entry under a final name.
* Models are written atomically: a crash at any point leaves the old model or a folder `load_jif` refuses.
* The same seed gives the same split and, on CPU, the same fold metrics.
* Loading a model never unpickles (safetensors + JSON); image paths from a CSV cannot leave the dataset root.
"""
import json, os, pickle, signal, subprocess, sys, textwrap, time, warnings
from pathlib import Path

import numpy as np, pandas as pd, pytest, torch
from PIL import Image

from jif_fastai.data import DatasetError, load_pad_ufes20, load_csv, load_derm7pt, kfold_splits
from jif_fastai.dataloaders import ImageCache, ImageMetaDataLoaders, presize
from jif_fastai.sample import make_sample

SIZE = 32

@pytest.fixture(scope='module', autouse=True)
def one_thread():
    "Tiny tensors: one intra-op thread is as fast and keeps the runs deterministic and polite on shared CI machines."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp('pad') / 'src', n_images=60, size=SIZE, seed=0)

@pytest.fixture(scope='module')
def data(sample):
    df, spec = load_pad_ufes20(sample)
    return df, spec

def _images(folder: Path, n: int) -> list:
    "`n` small PNGs of assorted modes (RGB, RGBA, greyscale, palette)."
    folder.mkdir(parents=True, exist_ok=True)
    rng, out = np.random.default_rng(0), []
    for i in range(n):
        im = Image.fromarray(rng.integers(0, 256, (48 + i % 7, 64, 3), dtype=np.uint8))
        im = [im, im.convert('RGBA'), im.convert('L'), im.convert('P')][i % 4]
        im.save(folder / f'img{i:03d}.png'); out.append(folder / f'img{i:03d}.png')
    return out

def _leftovers(d: Path) -> list: return sorted(p.name for p in d.rglob('*.tmp'))

# ================================================================================================ presized cache

@pytest.fixture
def cached(tmp_path):
    "A cache holding one image, and that image's entry file."
    src = _images(tmp_path / 'src', 1)[0]
    cache = ImageCache(SIZE, tmp_path / 'cache')
    ref = cache[src]
    return cache, src, cache.key(src), ref

DAMAGE = {
    'truncated': lambda b: b[:len(b) // 3],
    'empty': lambda b: b'',
    'flipped_pixel_byte': lambda b: b[:300] + bytes([b[300] ^ 0xFF]) + b[301:],
    'garbage_header': lambda b: b'\x00' * 64 + b[64:],
    'pickle_instead': lambda b: pickle.dumps(np.zeros((3, SIZE, SIZE), np.uint8)),
}

@pytest.mark.parametrize('damage', list(DAMAGE))
def test_cache_damaged_entry_is_detected_and_rebuilt(cached, damage):
    cache, src, f, ref = cached
    f.write_bytes(DAMAGE[damage](f.read_bytes()))
    assert cache._read(f) == (None, True)
    with pytest.warns(UserWarning, match=r'1 image\(s\) had a damaged presized-cache entry: rebuilt'):
        out = cache.load([src])
    np.testing.assert_array_equal(out[0], ref)
    np.testing.assert_array_equal(cache._read(f)[0], ref)          # the rebuilt entry is good again

def test_cache_wrong_shape_entry_is_rebuilt(cached):
    cache, src, f, ref = cached
    cache._write(f, np.zeros((3, 8, 8), np.uint8))                 # a valid file of another size
    with pytest.warns(UserWarning, match='damaged presized-cache entry'):
        np.testing.assert_array_equal(cache[src], ref)

def test_cache_changed_source_gets_new_entry(cached):
    cache, src, f, ref = cached
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(src)
    assert cache.key(src) != f and cache[src].max() == 0

@pytest.mark.parametrize('exc', [KeyboardInterrupt, OSError])
def test_cache_crash_mid_write_leaves_no_entry(tmp_path, monkeypatch, exc):
    src = _images(tmp_path / 'src', 1)[0]
    cache = ImageCache(SIZE, tmp_path / 'cache')
    def boom(*a, **k): raise exc('killed during rename')
    monkeypatch.setattr(os, 'replace', boom)
    if exc is OSError:                                             # disk full / read-only: recovered, with a warning
        with pytest.warns(UserWarning, match='could not be written to the presized cache'): a = cache[src]
        np.testing.assert_array_equal(a, presize(src, SIZE))
    else:
        with pytest.raises(KeyboardInterrupt): cache[src]
    assert not cache.key(src).exists() and _leftovers(tmp_path / 'cache') == []
    monkeypatch.undo()
    np.testing.assert_array_equal(cache[src], presize(src, SIZE))

def test_cache_folder_not_creatable(tmp_path):
    (tmp_path / 'file').write_text('not a folder')
    src = _images(tmp_path / 'src', 2)
    with pytest.warns(UserWarning, match='cannot be created'):
        cache = ImageCache(SIZE, tmp_path / 'file' / 'cache')
    with pytest.warns(UserWarning, match=r'2 image\(s\) could not be written to the presized cache'):
        out = cache.load(src)
    np.testing.assert_array_equal(out[1], presize(src[1], SIZE))

def _fill(paths, cache_dir, barrier, res):
    "Child process: wait for the other one, then fill the cache with `paths` and save what `load` returned."
    barrier.wait(60)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        np.save(res, ImageCache(SIZE, cache_dir).load(paths, n_workers=2))

def test_cache_two_processes_fill_it_at_once(tmp_path):
    import multiprocessing as mp
    if 'fork' not in mp.get_all_start_methods(): pytest.skip('needs the fork start method')
    ctx = mp.get_context('fork')                                   # forked: no second import of fastai
    paths = _images(tmp_path / 'src', 48)
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_fill, args=(paths, tmp_path / 'cache', barrier, tmp_path / f'res{i}.npy')) for i in range(2)]
    for p in procs: p.start()                                      # both start filling the empty cache together
    for p in procs: p.join(120); assert p.exitcode == 0
    ref = np.stack([presize(p, SIZE) for p in paths])
    for i in range(2): np.testing.assert_array_equal(np.load(tmp_path / f'res{i}.npy'), ref)
    cache = ImageCache(SIZE, tmp_path / 'cache')
    entries = sorted((tmp_path / 'cache').rglob('*.npy'))
    assert len(entries) == len(paths) and _leftovers(tmp_path / 'cache') == []
    for p, r in zip(paths, ref): np.testing.assert_array_equal(cache._read(cache.key(p))[0], r)

# ================================================================================================ determinism

def test_same_seed_same_split(data):
    df, _ = data
    a, b, c = kfold_splits(df, 3, seed=7), kfold_splits(df.copy(), 3, seed=7), kfold_splits(df, 3, seed=8)
    for (ta, va), (tb, vb) in zip(a, b): np.testing.assert_array_equal(ta, tb); np.testing.assert_array_equal(va, vb)
    assert any(not np.array_equal(va, vc) for (_, va), (_, vc) in zip(a, c))

def _fit_fold(df, spec, images, seed):
    "Train a tiny resnet10t JIF-MMFA for two epochs on fold 0; its metrics and validation probabilities."
    from fastai.torch_core import set_seed
    from jif_fastai.learner import jif_learner
    tr, va = kfold_splits(df, 3, seed=seed)[0]
    set_seed(seed, reproducible=True)
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=va, train_idx=tr, size=SIZE, bs=16, device='cpu', images=images, seed=seed)
    learn = jif_learner(dls, 'resnet10t', pretrained=False)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(2, 3e-3)
        probs, _ = learn.get_preds()
    return learn.recorder.values, probs

def test_same_seed_same_cpu_fold_metrics(data, tmp_path):
    df, spec = data
    images = ImageCache(36, tmp_path / 'cache').load(df.image.tolist())
    (m1, p1), (m2, p2) = _fit_fold(df, spec, images, 0), _fit_fold(df, spec, images, 0)
    assert m1 == m2 and torch.equal(p1, p2)
    m3, p3 = _fit_fold(df, spec, images, 1)
    assert not torch.equal(p1, p3)

# ================================================================================================ atomic model writes

@pytest.fixture(scope='module')
def learn(data, tmp_path_factory):
    from jif_fastai.learner import jif_learner
    df, spec = data
    tr, va = kfold_splits(df, 3, seed=0)[0]
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=va, train_idx=tr, size=SIZE, bs=8, device='cpu',
                                       cache_dir=tmp_path_factory.mktemp('cache'), seed=0)
    return jif_learner(dls, 'resnet10t', pretrained=False)

@pytest.fixture
def saved(learn, tmp_path):
    "A model folder holding a good model, and the state it must keep."
    from jif_fastai.inference import export_jif
    d = export_jif(learn, tmp_path / 'model')
    return d, {f.name: f.read_bytes() for f in d.iterdir()}

def _bump(learn):
    "Change the weights, so a new save differs from the old one."
    with torch.no_grad(): next(learn.model.parameters()).add_(1.)

def _state(d: Path) -> dict: return {f.name: f.read_bytes() for f in d.iterdir() if not f.name.endswith('.tmp')}

def test_save_crash_while_writing_weights_keeps_old_model(learn, saved, monkeypatch):
    import jif_fastai.inference as L
    d, before = saved
    def crash_before_rename(fd):  # the weights' temporary file is written but not yet renamed
        raise KeyboardInterrupt('killed while writing weights')
    monkeypatch.setattr(os, 'fsync', crash_before_rename)
    _bump(learn)
    with pytest.raises(KeyboardInterrupt): L.export_jif(learn, d)
    assert _state(d) == before and _leftovers(d) == []
    L.load_jif(d)                                                 # the old model is intact and trusted

def test_save_crash_between_weights_and_config_is_refused(learn, saved, monkeypatch):
    import jif_fastai.inference as L
    d, before = saved
    real = L.atomic_write
    def crash(path, *a, **k):
        if Path(path).name == 'config.json': raise KeyboardInterrupt('killed before the config was written')
        return real(path, *a, **k)
    monkeypatch.setattr(L, 'atomic_write', crash)
    _bump(learn)
    with pytest.raises(KeyboardInterrupt): L.export_jif(learn, d)
    assert (d / 'config.json').read_bytes() == before['config.json'] and _leftovers(d) == []
    with pytest.raises(L.ModelFileError, match='checksum differs from the one in config.json'): L.load_jif(d)

def test_save_crash_during_config_rename_is_refused(learn, saved, monkeypatch):
    import jif_fastai.inference as L
    d, before = saved
    real = os.replace
    def replace(src, dst):
        if Path(dst).name == 'config.json': raise OSError(28, 'No space left on device')
        return real(src, dst)
    monkeypatch.setattr(os, 'replace', replace)
    _bump(learn)
    with pytest.raises(OSError): L.export_jif(learn, d)
    assert (d / 'config.json').read_bytes() == before['config.json'] and _leftovers(d) == []
    with pytest.raises(L.ModelFileError, match='checksum differs'): L.load_jif(d)

def test_save_with_unjsonable_extra_changes_nothing(learn, saved):
    import jif_fastai.inference as L
    d, before = saved
    _bump(learn)
    with pytest.raises(TypeError, match='not JSON-serialisable'): L.export_jif(learn, d, note=object())
    assert _state(d) == before and _leftovers(d) == []
    L.export_jif(learn, d, bal_acc=np.float32(0.5), folds=np.arange(3))   # NumPy values are fine
    assert json.loads((d / 'config.json').read_text())['folds'] == [0, 1, 2]

def test_atomic_write_crash_keeps_old_file(tmp_path, monkeypatch):
    from jif_fastai.core import atomic_write
    f = atomic_write(tmp_path / 'results.csv', 'a,b\n1,2\n')
    def crash(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt): atomic_write(f, 'a,b\n' + '3,4\n' * 10_000)
    assert f.read_text() == 'a,b\n1,2\n' and _leftovers(tmp_path) == []

def _save_forever(learn, folder, saved):
    "Child process: save `learn` into `folder` again and again, changing the weights each time."
    from jif_fastai.inference import export_jif
    for i in range(100_000):
        with torch.no_grad(): next(learn.model.parameters()).add_(1.)
        export_jif(learn, folder, i=i)
        saved.set()

def test_kill_during_repeated_saves_never_leaves_a_trusted_half_file(learn, tmp_path):
    import multiprocessing as mp
    from jif_fastai.inference import load_jif, ModelFileError
    if 'fork' not in mp.get_all_start_methods(): pytest.skip('needs the fork start method')
    ctx = mp.get_context('fork')
    for k in range(3):                                             # three kills at random moments
        saved = ctx.Event()
        p = ctx.Process(target=_save_forever, args=(learn, tmp_path / f'm{k}', saved))
        p.start()
        try:
            assert saved.wait(60), 'the first save did not finish'
            time.sleep(np.random.default_rng().random() * 0.2)
        finally:
            os.kill(p.pid, signal.SIGKILL); p.join(30)
        try: pred = load_jif(tmp_path / f'm{k}')               # either a complete model ...
        except ModelFileError as e:                                # ... or one refused as unfinished
            assert 'checksum differs' in str(e)
        else:                                                      # the weights are those of the save the config records
            w0, w = next(learn.model.parameters()).detach().cpu(), next(pred.model.parameters()).detach().cpu()
            torch.testing.assert_close(w, w0 + (pred.cfg['i'] + 1), atol=1e-2, rtol=0)

# ================================================================================================ security

class Bomb:
    "Unpickling this would create a marker file: proof that code ran."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (Path(self.marker),))

def test_model_load_never_unpickles(saved, tmp_path, monkeypatch):
    import hashlib
    from jif_fastai.inference import load_jif, ModelFileError
    d, _ = saved
    marker = tmp_path / 'PWNED'
    bomb = pickle.dumps(Bomb(marker))
    (d / 'model.safetensors').write_bytes(bomb)                    # pickle bytes under the safetensors name ...
    cfg = json.loads((d / 'config.json').read_text())
    cfg['weights_sha256'] = hashlib.sha256(bomb).hexdigest()       # ... with a config vouching for them
    (d / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match='cannot be read as safetensors'): load_jif(d)
    (d / 'model.safetensors').unlink(); (d / 'model.pth').write_bytes(bomb)
    with pytest.raises(ModelFileError, match=r"\['model.pth'\] look like pickled models, which are never loaded"): load_jif(d)
    assert not marker.exists()

def test_model_load_path_uses_no_unpickler(saved, monkeypatch):
    from jif_fastai.inference import load_jif
    d, _ = saved
    def forbidden(*a, **k): raise AssertionError('something tried to unpickle while loading a model')
    for mod, name in [(pickle, 'load'), (pickle, 'loads'), (pickle, 'Unpickler'), (torch, 'load')]:
        monkeypatch.setattr(mod, name, forbidden)
    pred = load_jif(d)
    assert pred.classes and pred.model.training is False

@pytest.mark.parametrize('evil', ['../../etc/passwd', '/etc/passwd', 'im/../../outside.png', 'link/outside.png'])
def test_csv_image_path_cannot_escape_root(tmp_path, evil):
    root = tmp_path / 'ds'; (root / 'im').mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'im' / 'a.png')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'outside.png')
    (root / 'link').symlink_to(tmp_path)                            # a link inside the root pointing out of it
    pd.DataFrame({'file': ['im/a.png', evil], 'dx': ['MEL', 'NEV']}).to_csv(root / 'meta.csv', index=False)
    with pytest.raises(DatasetError) as e: load_csv(root / 'meta.csv', 'file', 'dx')
    assert f"row 1: image path {evil!r} escapes the dataset root" in str(e.value)

def test_derm7pt_image_path_cannot_escape_root(tmp_path):
    from jif_fastai.data import DERM7PT_CRITERIA
    root = tmp_path / 'derm7pt'; (root / 'meta').mkdir(parents=True); (root / 'images').mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'images' / 'a.jpg')
    meta = pd.DataFrame({'case_num': [1, 2, 3], 'diagnosis': ['melanoma', 'clark nevus', 'melanoma'], 'elevation': ['flat'] * 3,
                         'location': ['back'] * 3, 'sex': ['male'] * 3, 'derm': ['a.jpg', '../../../../etc/passwd', 'a.jpg'],
                         'clinic': ['a.jpg'] * 3, 'management': ['excision'] * 3,
                         'level_of_diagnostic_difficulty': ['low'] * 3, **{c: ['absent'] * 3 for c in DERM7PT_CRITERIA}})
    meta.to_csv(root / 'meta' / 'meta.csv', index=False)
    for i, name in enumerate(['train', 'valid', 'test']):
        pd.DataFrame({'indexes': [i]}).to_csv(root / 'meta' / f'{name}_indexes.csv', index=False)
    with pytest.raises(DatasetError, match=r"row 1: image path '../../../../etc/passwd' escapes the dataset root"):
        load_derm7pt(root)

# ================================================================================================ cross-validation

CV_TINY = dict(folds=2, epochs=1, size=32, bs=32, missing_fracs=(0., .5), progress=False, pictures=False)
KILL_AT_RESULTS = textwrap.dedent(f'''
    import os, signal, sys, torch, warnings
    from pathlib import Path
    warnings.simplefilter('ignore'); torch.set_num_threads(1)
    real = os.replace
    def replace(src, dst):   # SIGKILL this process at the final rename of results.csv: its bytes sit in a temp file
        if Path(dst).name == 'results.csv': os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst)
    os.replace = replace
    from jif_fastai.cv import run_cv
    run_cv(out_dir=sys.argv[1], **{CV_TINY!r})
''')

def test_cv_killed_during_final_results_write(tmp_path):
    "Extends tests/test_cv.py (kills between and inside folds) to a kill while results.csv is being written."
    cv = pytest.importorskip('jif_fastai.cv')
    out = tmp_path / 'run'
    p = subprocess.run([sys.executable, '-c', KILL_AT_RESULTS, str(out)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert cv.fold_done(out, 0) and cv.fold_done(out, 1)                  # both folds finished before the kill ...
    assert not (out / 'results.csv').exists() and not (out / 'results.md').exists()   # ... and no half results file
    assert any(out.glob('.results.csv.*.tmp'))                           # (the unfinished write is a hidden temp file)
    folds_before = {f.name: f.read_bytes() for f in (out / 'folds').iterdir()}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        resumed = cv.run_cv(out_dir=out, **CV_TINY)                      # re-run: nothing to train, results written
        reference = cv.run_cv(out_dir=tmp_path / 'ref', **CV_TINY)       # an uninterrupted run
    assert {f.name: f.read_bytes() for f in (out / 'folds').iterdir()} == folds_before
    pd.testing.assert_frame_equal(resumed.drop(columns='minutes'), reference.drop(columns='minutes'), check_exact=False, rtol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(out / 'results.csv').drop(columns='minutes'),
                                  pd.read_csv(tmp_path / 'ref' / 'results.csv').drop(columns='minutes'), check_exact=False, rtol=1e-6)

def test_two_trainings_on_one_run_folder(tmp_path):
    "A second process training into a run folder that another holds is refused (naming it); a killed holder's lock is stale and ignored."
    from jif_fastai.cv import run_cv, LOCK_NAME, RunConfigError
    out = tmp_path / 'run'; out.mkdir()
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f"""
        import fcntl, os, time
        f = open({str(out / LOCK_NAME)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)
        f.write(f'process {{os.getpid()}} on test'); f.flush(); print('held', flush=True); time.sleep(120)""")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        kw = dict(structure='meta', folds=2, epochs=1, size=SIZE, bs=16, out_dir=out, progress=False, pictures=False)
        with pytest.raises(RunConfigError, match=f'run is in use by process {holder.pid} on test, which is training there; wait'):
            run_cv(**kw)
        assert not (out / 'run.json').exists()
    finally: holder.send_signal(signal.SIGKILL); holder.wait()
    res = run_cv(**kw)                                                        # the dead holder's lock file is no obstacle
    assert list(res.fold) == ['0', '1', 'mean', 'std'] and (out / 'results.csv').is_file()

TRAIN_CLI = ['train', '--structure', 'meta', '--epochs', '6', '--folds', '2', '--bs', '16',   # metadata-only: folds of seconds
             '--no-pictures']
CLI = "import sys; from jif_fastai.cli import main; sys.exit(main(sys.argv[1:]))"

def test_ctrl_c_during_a_fold_then_the_same_command_resumes(tmp_path):
    "SIGINT (Ctrl-C) in fold 1: one line, exit 130, no temporary file left; the same command again trains fold 1 only and finishes."
    from jif_fastai.cv import fold_done
    out = tmp_path / 'run'; argv = [sys.executable, '-c', CLI, *TRAIN_CLI, '--out', str(out)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    # A shell starts background jobs with SIGINT ignored, and a child inherits that; Python only turns SIGINT into
    # KeyboardInterrupt when it starts with the default disposition, so restore it (the test then runs the same from `cmd &`).
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (fold_done(out, 0) and (out / 'progress.json').is_file() and json.loads((out / 'progress.json').read_text()).get('fold') == 1):
        assert p.poll() is None, p.communicate()[1][-2000:]
        assert time.time() - t0 < 300, 'fold 1 never started'
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    o, e = p.communicate(timeout=120)
    assert p.returncode == 130, e[-2000:]
    assert e.strip().splitlines()[-1] == ('jif-fastai train: interrupted; finished folds are saved: run the same command again to resume')
    assert 'Traceback' not in e and not list(out.rglob('*.tmp'))                      # nothing half-written
    assert fold_done(out, 0) and not fold_done(out, 1) and not (out / 'results.csv').exists()
    fold0 = (out / 'folds' / 'fold_0.json').read_bytes()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)   # the same command again
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / 'folds' / 'fold_0.json').read_bytes() == fold0 and fold_done(out, 1)  # fold 0 kept, fold 1 trained
    assert list(pd.read_csv(out / 'results.csv').fold.astype(str)) == ['0', '1', 'mean', 'std']
