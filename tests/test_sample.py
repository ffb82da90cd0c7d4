"Tests of `jif_fastai.sample` against the real PAD-UFES-20 `metadata.csv` (skipped where the shared data is absent)."
import os, signal, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
import jif_fastai.sample as S

REAL_CSV = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'pad-ufes-20' / 'metadata.csv'
needs_real = pytest.mark.skipif(not REAL_CSV.is_file(), reason=f'real PAD-UFES-20 metadata.csv not found at {REAL_CSV}')
NUMERIC = ('age', 'diameter_1', 'diameter_2')
IDS = ('patient_id', 'lesion_id', 'img_id')
CATEGORICAL = [c for c in S.PAD_COLUMNS if c not in NUMERIC + IDS]

def read_str(path): return pd.read_csv(path, dtype=str, keep_default_na=False)

@pytest.fixture(scope='module')
def real(): return read_str(REAL_CSV)

@pytest.fixture(scope='module')
def root(tmp_path_factory): return S.make_sample(tmp_path_factory.mktemp('s') / 'pad', n_images=300, seed=0)

@pytest.fixture(scope='module')
def meta(root): return read_str(root / 'metadata.csv')

def blank_patterns(df): return set(map(tuple, df.eq('').to_numpy()))

@needs_real
def test_header_matches_real(root, real):
    assert tuple(real.columns) == S.PAD_COLUMNS
    assert (root / 'metadata.csv').read_text().splitlines()[0] == REAL_CSV.read_text().splitlines()[0]

@needs_real
def test_vocabularies_subset_of_real(meta, real):
    for c in CATEGORICAL:
        extra = set(meta[c]) - set(real[c])
        assert not extra, f'{c}: values not in the real file: {extra}'
    assert {'BRAZIL', 'BRASIL'} <= set(meta.background_father)
    assert set(meta.diagnostic) == set(real.diagnostic) == set(S.CLASSES)

@needs_real
def test_value_formats_like_real(meta, real):
    for df in (real, meta):  # the same regular expressions hold for both files
        assert df.patient_id.str.fullmatch(r'PAT_\d+').all()
        assert df.lesion_id.str.fullmatch(r'\d+').all() and df.age.str.fullmatch(r'\d+').all()
        assert df.diameter_1.str.fullmatch(r'(\d+\.\d)?').all() and df.diameter_2.str.fullmatch(r'(\d+\.\d)?').all()
        assert (df.img_id.str.extract(r'^(PAT_\d+_\d+)_\d+\.png$')[0] == df.patient_id + '_' + df.lesion_id).all()
        assert df.img_id.is_unique
    age = meta.age.astype(int)
    assert age.between(real.age.astype(int).min(), real.age.astype(int).max()).all()
    d = meta[meta.diameter_1 != '']
    assert (d.diameter_1.astype(float) >= d.diameter_2.astype(float)).all()

@needs_real
def test_blank_pattern_like_real(meta, real):
    assert blank_patterns(meta) <= blank_patterns(real)  # which columns are blank together
    for df in (real, meta):
        block = df[list(S.BLANK_BLOCK)].eq('').all(axis=1)
        assert (df.biopsed[block] == 'False').all()                      # blank block: non-biopsied only
        assert not df[df.biopsed == 'True'].eq('').any().any()           # biopsied rows: no blanks
        assert (df.patient_id[block].str[4:].astype(int) >= 996).all()   # second-phase patients
        assert df.groupby('patient_id')['smoke'].apply(lambda s: s.eq('').nunique()).max() == 1  # per patient
    frac = lambda df: df.smoke[df.biopsed == 'False'].eq('').mean()
    assert abs(frac(meta) - frac(real)) < .15

@needs_real
def test_symptom_unk_and_biopsy_proxy(meta, real):
    for s in S.SYMPTOMS: assert set(meta[s]) <= {'True', 'False', 'UNK'}
    assert (meta[['grew', 'changed']] == 'UNK').any().all()
    for df in (real, meta):  # BCC, MEL, SCC are always biopsied
        assert (df.biopsed[df.diagnostic.isin(['BCC', 'MEL', 'SCC'])] == 'True').all()

def test_class_counts_and_groups(meta):
    counts = meta.diagnostic.value_counts()
    assert counts.to_dict() == S.class_counts(300)
    assert list(counts.index[:2]) == ['BCC', 'ACK'] and counts.min() >= 20
    assert meta.groupby('diagnostic').patient_id.nunique().min() >= 5  # 5-fold grouped CV is possible
    assert meta.groupby('patient_id').size().max() > 1 and meta.groupby('lesion_id').size().max() > 1
    assert meta.groupby('patient_id').lesion_id.nunique().max() > 1
    assert meta.groupby('lesion_id').patient_id.nunique().max() == 1

def test_images_layout(root, meta):
    files = {p.name: p for p in (root / 'images').glob('imgs_part_*/*.png')}
    assert sorted(files) == sorted(meta.img_id)
    parts = {f.parent.name for f in files.values()}
    assert parts == {'imgs_part_1', 'imgs_part_2', 'imgs_part_3'}
    for f in files.values(): assert f.parent.name == f'imgs_part_{S.image_part(int(f.name.split("_")[1]))}'
    modes = [Image.open(f).mode for f in files.values()]
    assert set(modes) == {'RGB', 'RGBA'} and 10 <= modes.count('RGBA') <= 60
    im = Image.open(next(iter(files.values())))
    assert max(im.size) == 128

def test_full_size_about_one_megapixel(tmp_path):
    root = S.make_sample(tmp_path / 'big', n_images=3, full_size=True)
    files = list((root / 'images').glob('imgs_part_*/*.png'))
    assert len(files) == 3
    for f in files: assert .8e6 <= np.prod(Image.open(f).size) <= 1.2e6

def test_deterministic(tmp_path, root):
    a = S.make_sample(tmp_path / 'a', n_images=300, seed=0)
    assert (a / 'metadata.csv').read_bytes() == (root / 'metadata.csv').read_bytes()
    for f in sorted((root / 'images').glob('imgs_part_*/*.png'))[:20]:
        assert np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(a / f.relative_to(root))))
    b = S.make_sample(tmp_path / 'b', n_images=300, seed=1)
    assert (a / 'metadata.csv').read_bytes() != (b / 'metadata.csv').read_bytes()

@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch, exc):
    calls = []
    def boom(*args, **kw):
        calls.append(1)
        if len(calls) > 5: raise exc('interrupted')
    monkeypatch.setattr(S, '_save_png', boom)
    with pytest.raises(exc): S.make_sample(tmp_path / 'pad', n_images=30)
    assert list(tmp_path.iterdir()) == []  # no dest, no temporary directory

def test_interrupted_overwrite_keeps_old_sample(tmp_path, monkeypatch):
    root = S.make_sample(tmp_path / 'pad', n_images=20, seed=0)
    before = (root / 'metadata.csv').read_bytes()
    monkeypatch.setattr(S, '_save_png', lambda *a, **k: (_ for _ in ()).throw(RuntimeError('disk full')))
    with pytest.raises(RuntimeError): S.make_sample(root, n_images=20, seed=1, overwrite=True)
    assert S.is_complete(root) and (root / 'metadata.csv').read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['pad']

def test_killed_write_never_looks_complete(tmp_path):
    "A SIGKILLed generator leaves at most a hidden temp dir without marker, never `dest`"
    code = textwrap.dedent(f'''
        import os, signal, jif_fastai.sample as S
        orig, n = S._save_png, [0]
        def save(*a, **k):
            n[0] += 1
            if n[0] > 5: os.kill(os.getpid(), signal.SIGKILL)
            orig(*a, **k)
        S._save_png = save
        S.make_sample({str(tmp_path / 'pad')!r}, n_images=30)''')
    assert subprocess.run([sys.executable, '-c', code]).returncode == -signal.SIGKILL
    assert not (tmp_path / 'pad').exists()
    for p in tmp_path.iterdir(): assert p.name.startswith('.pad.tmp-') and not S.is_complete(p)

def test_refuses_to_clobber(tmp_path):
    (tmp_path / 'mine').mkdir(); (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError): S.make_sample(tmp_path / 'mine', n_images=10)
    with pytest.raises(FileExistsError): S.make_sample(tmp_path / 'mine', n_images=10, overwrite=True)
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep me'
    (tmp_path / 'empty').mkdir()
    assert S.is_complete(S.make_sample(tmp_path / 'empty', n_images=10))  # an empty dir is fine

def test_sample_root_caches(tmp_path, monkeypatch):
    r = S.sample_root(n_images=30, cache=tmp_path)
    assert r.parent == tmp_path and S.is_complete(r)
    monkeypatch.setattr(S, 'make_sample', lambda *a, **k: pytest.fail('regenerated a complete sample'))
    assert S.sample_root(n_images=30, cache=tmp_path) == r
    monkeypatch.undo()
    (r / S.MARKER).unlink()  # incomplete -> regenerated
    assert S.is_complete(S.sample_root(n_images=30, cache=tmp_path))

def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv('JIF_FASTAI_CACHE', str(tmp_path / 'c'))
    assert S.cache_dir() == tmp_path / 'c'
    monkeypatch.delenv('JIF_FASTAI_CACHE'); monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'x'))
    assert S.cache_dir() == tmp_path / 'x' / 'jif_fastai'

def test_pad_sized_counts():
    assert S.class_counts(2298) == S.PAD_COUNTS
