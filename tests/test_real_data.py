"The loaders on the publishers' real files (../shared/data): row counts, images found, quirks handled."
import warnings
import numpy as np, pandas as pd, pytest
from jif_fastai.data import *

def _load(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        out = fn(*args, **kw)
    return out, [str(x.message) for x in w]

def test_pad_ufes20(real_data):
    (df, spec), msgs = _load(load_pad_ufes20, real_data/'pad-ufes-20')
    assert any('2253 of 2298 rows have no image file' in m for m in msgs), msgs   # all 2,298 rows read, gap reported
    assert len(df) == 45 and df.image.map(lambda p: p.endswith('.png')).all()
    assert df.label.value_counts().to_dict() == {'BCC': 23, 'ACK': 12, 'SEK': 6, 'NEV': 4}
    assert len(spec.meta_names) == 21 and 'biopsed' not in spec.meta_names     # proxy dropped by default
    assert 'BRASIL' not in set(df.background_father.dropna()) and 'UNK' not in set(df.grew.dropna())
    (df2, spec2), _ = _load(load_pad_ufes20, real_data/'pad-ufes-20', include_proxies=True)
    assert 'biopsed' in spec2.cat_names
    with pytest.raises(DatasetError, match='2253 of 2298'): load_pad_ufes20(real_data/'pad-ufes-20', on_missing='raise')

def test_pad_metadata_encoding_all_rows(real_data):
    "Encoding all 2,298 real rows: blanks of non-biopsied rows land in the unknown slot / missing indicator."
    raw = read_table(real_data/'pad-ufes-20'/'metadata.csv')
    assert raw.shape == (2298, 26)
    mp = MetaPreprocessor(PAD_CATS, PAD_CONTS).fit(raw)
    cats, conts = mp.transform(raw)
    assert cats.shape == (2298, 21) and conts.shape == (2298, 3) and np.isfinite(conts).all()
    assert (cats[raw.smoke.isna().to_numpy(), PAD_CATS.index('smoke')] == 0).all()
    assert (cats[raw.diameter_1.isna().to_numpy(), len(PAD_CATS) + 1] == 2).all()    # diameter_1_na flag

def test_isic2019(real_data):
    (df, spec), msgs = _load(load_isic2019, real_data/'isic-2019')
    assert any('25067 of 25331 rows have no image file' in m for m in msgs), msgs
    assert len(df) == 264 and set(df.label) == {'MEL', 'NV'}
    assert spec.cat_names == ['sex', 'anatom_site_general'] and spec.cont_names == ['age_approx']
    assert df.group.nunique() < len(df) or df.lesion_id.isna().all()
    (dfm, specm), _ = _load(load_isic2019, real_data/'isic-2019', classes=['MEL', 'NV'])
    assert specm.classes == ['MEL', 'NV'] and len(dfm) == 264

def test_isic_sex_column_named_sex(real_data, tmp_path):
    "Copies that name the column `sex` load the same as those that name it `gender`."
    src = real_data/'isic-2019'
    (tmp_path/'ISIC_2019_Training_Input').symlink_to(src/'ISIC_2019_Training_Input')
    (tmp_path/'ISIC_2019_Training_GroundTruth.csv').symlink_to(src/'ISIC_2019_Training_GroundTruth.csv')
    pd.read_csv(src/'ISIC_2019_Training_Metadata.csv').rename(columns={'gender':'sex'}).to_csv(tmp_path/'ISIC_2019_Training_Metadata.csv', index=False)
    (a, _), _ = _load(load_isic2019, src); (b, _), _ = _load(load_isic2019, tmp_path)
    assert a.sex.fillna('-').tolist() == b.sex.fillna('-').tolist()

def test_derm7pt(real_data):
    df, spec = load_derm7pt(real_data/'derm7pt', need_images=False)
    assert len(df) == 1011 and df.image.isna().all()
    assert df.label.value_counts().to_dict() == {'NEV': 575, 'MEL': 252, 'MISC': 97, 'SK': 45, 'BCC': 42}
    tr, va, te = official_splits(df)
    assert (len(tr), len(va), len(te)) == (413, 203, 395)
    assert spec.cat_names == ['elevation', 'location', 'sex'] and 'management' in df.columns
    _, spec_p = load_derm7pt(real_data/'derm7pt', need_images=False, include_proxies=True)
    assert {'management', 'level_of_diagnostic_difficulty'} <= set(spec_p.cat_names)
    with pytest.raises(DatasetError, match='image folder not found|no image file'): load_derm7pt(real_data/'derm7pt')

def test_kfold_on_real_pad_groups(real_data):
    "Grouped folds on all 2,298 real rows: no patient in two folds."
    raw = read_table(real_data/'pad-ufes-20'/'metadata.csv')
    df = pd.DataFrame({'label': raw.diagnostic, 'group': raw.patient_id})
    splits = kfold_splits(df, 5, seed=0)
    check_splits(df, splits)
    assert sorted(np.concatenate([v for _, v in splits]).tolist()) == list(range(2298))

def test_ham10000(real_data):
    "All 10,015 rows, every image found in the two part folders, 7,470 lesions, the README's class counts; no image decoded."
    from unittest import mock
    with mock.patch('PIL.Image.open', side_effect=AssertionError('indexing 10,015 images must not decode them')):
        (df, spec), msgs = _load(load_ham10000, real_data/'ham10000')
    assert len(df) == 10015 and df.image.notna().all() and not any('no image file' in m for m in msgs), msgs
    assert df.group.nunique() == 7470 and spec.classes == HAM_CLASSES
    assert df.label.value_counts().to_dict() == {'nv': 6705, 'mel': 1113, 'bkl': 1099, 'bcc': 514, 'akiec': 327, 'vasc': 142, 'df': 115}
    assert df.sex.isna().sum() == 57 and df.localization.isna().sum() == 234 and df.age.isna().sum() == 57   # 'unknown' / blank
    assert spec.cat_names == ['sex', 'localization'] and spec.cont_names == ['age'] and spec.proxies == ['dx_type']
    splits = kfold_splits(df, 5, seed=0)
    check_splits(df, splits)
    folds = [set(df.group.iloc[va]) for _, va in splits]
    assert sum(map(len, folds)) == len(set().union(*folds)) == 7470                  # no lesion in two folds

def test_pad_all_rows_without_images(real_data):
    "need_images=False keeps all 2,298 rows (for metadata-only models), with the 45 image paths that exist."
    df, spec = load_pad_ufes20(real_data/'pad-ufes-20', need_images=False)
    assert len(df) == 2298 and df.image.notna().sum() == 45
