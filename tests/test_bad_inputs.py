"""The bad-input catalogue (book/catalogue.md): one test per row.

Each test feeds one kind of messy input a real export contains and checks what the user gets: a `DatasetError` /
`ModelFileError` whose message names the file, column or row (and says how to fix it), or a documented recovery that
happened *and* was announced in a warning. Never a bare traceback from inside torch, PIL or pandas.
Everything is tiny (32-px images, a 60-image sample, an untrained resnet10t), so the file runs in seconds.
"""
import json, shutil, warnings
from pathlib import Path

import numpy as np, pandas as pd, pytest
from PIL import Image

from jif_fastai.data import (DatasetError, MetaPreprocessor, read_table, load_pad_ufes20, load_isic2019,
                             load_csv, kfold_splits, ISIC_CLASSES, PAD_CLASSES)
from jif_fastai.dataloaders import ImageCache, ImageMetaDataLoaders, open_image, presize
from jif_fastai.sample import make_sample

SIZE = 32

# ----------------------------------------------------------------------------------------------------------- helpers

def _rgb(h=40, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)

def _no_warnings(fn, *args, **kwargs):
    "Call `fn` and fail if it warns."
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        return fn(*args, **kwargs)

def _msg(excinfo) -> str: return str(excinfo.value)

@pytest.fixture(scope='session')
def pad_src(tmp_path_factory):
    "A 60-image PAD-UFES-20-layout sample (10 per class, 32-px PNGs) to copy and damage."
    return make_sample(tmp_path_factory.mktemp('pad') / 'src', n_images=60, size=SIZE, seed=0)

@pytest.fixture
def pad(pad_src, tmp_path):
    "A private copy of the sample for one test."
    return Path(shutil.copytree(pad_src, tmp_path / 'pad'))

def read_meta(root): return pd.read_csv(root / 'metadata.csv', dtype=str, keep_default_na=False)
def write_meta(root, df): df.to_csv(root / 'metadata.csv', index=False)

def make_isic(root: Path, n: int = 16) -> Path:
    "A tiny ISIC-2019 layout: ground truth (one-hot), metadata and `n` JPEGs."
    (root / 'ISIC_2019_Training_Input').mkdir(parents=True)
    ids = [f'ISIC_{i:07d}' for i in range(n)]
    gt = pd.DataFrame(0.0, index=range(n), columns=ISIC_CLASSES + ['UNK'])
    for i in range(n): gt.iloc[i, i % 2] = 1.0   # MEL / NV
    gt.insert(0, 'image', ids)
    gt.to_csv(root / 'ISIC_2019_Training_GroundTruth.csv', index=False)
    pd.DataFrame({'image': ids, 'age_approx': [40 + i for i in range(n)], 'anatom_site_general': ['torso'] * n,
                  'lesion_id': [f'L{i}' for i in range(n)], 'sex': ['male', 'female'] * (n // 2)}
                 ).to_csv(root / 'ISIC_2019_Training_Metadata.csv', index=False)
    for i in ids: Image.fromarray(_rgb(seed=len(i))).save(root / 'ISIC_2019_Training_Input' / f'{i}.jpg')
    return root

def make_csv(root: Path, rows: dict, name='my.csv') -> Path:
    "A user CSV next to an `im/` folder holding the PNGs its `file` column names."
    (root / 'im').mkdir(parents=True, exist_ok=True)
    for f in rows['file']:
        if isinstance(f, str) and f.startswith('im/'): Image.fromarray(_rgb()).save(root / f)
    pd.DataFrame(rows).to_csv(root / name, index=False)
    return root / name

# ================================================================================================ images

def test_image_missing_file(tmp_path):
    with pytest.raises(DatasetError) as e: ImageCache(SIZE, tmp_path / 'c').load([tmp_path / 'nope.png'])
    assert 'nope.png: image file not found' in _msg(e)

def test_image_zero_byte(tmp_path):
    (tmp_path / 'zero.png').write_bytes(b'')
    with pytest.raises(DatasetError) as e: presize(tmp_path / 'zero.png', SIZE)
    assert 'zero.png: image file is empty (0 bytes)' in _msg(e)

@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
def test_image_truncated(tmp_path, fmt):
    f = tmp_path / f'cut.{fmt}'
    Image.fromarray(_rgb(200, 200)).save(f, format=fmt.upper())
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DatasetError) as e: presize(f, SIZE)
    assert f'cut.{fmt}: cannot be read as an image' in _msg(e) and 're-export it' in _msg(e)

def test_image_not_an_image(tmp_path):
    (tmp_path / 'notes.png').write_text('patient 12: see chart')
    with pytest.raises(DatasetError) as e: presize(tmp_path / 'notes.png', SIZE)
    assert 'notes.png: cannot be read as an image' in _msg(e)

def test_image_rgba_opaque_is_lossless(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).convert('RGBA').save(tmp_path / 'a.png')
    np.testing.assert_array_equal(np.asarray(_no_warnings(open_image, tmp_path / 'a.png')), rgb)

def test_image_rgba_transparent(tmp_path):
    rgba = np.dstack([np.full((40, 50, 3), 200, np.uint8), np.full((40, 50), 255, np.uint8)])
    rgba[:, :25, 3] = 0                                   # left half fully transparent
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'cut_out.png')
    with pytest.warns(UserWarning, match=r'1 image\(s\) have transparent pixels: composited onto black .*cut_out.png'):
        im = np.asarray(open_image(tmp_path / 'cut_out.png'))
    assert (im[:, :25] == 0).all() and (im[:, 25:] == 200).all()

def test_image_16bit(tmp_path):
    a16 = (np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 30)
    Image.fromarray(a16).save(tmp_path / 'scan16.png')
    with pytest.warns(UserWarning, match=r'16 bits per channel: reduced to 8 bits .*scan16.png'):
        im = np.asarray(open_image(tmp_path / 'scan16.png'))
    np.testing.assert_array_equal(im[..., 0], (a16 >> 8).astype(np.uint8))

def test_image_greyscale(tmp_path):
    g = _rgb()[..., 0]
    Image.fromarray(g).save(tmp_path / 'grey.png')
    im = np.asarray(_no_warnings(open_image, tmp_path / 'grey.png'))
    assert im.shape == (40, 50, 3) and all((im[..., c] == g).all() for c in range(3))

def test_image_palette(tmp_path):
    p = Image.fromarray(_rgb()).convert('P')
    p.save(tmp_path / 'pal.png')
    np.testing.assert_array_equal(np.asarray(_no_warnings(open_image, tmp_path / 'pal.png')), np.asarray(p.convert('RGB')))

def test_image_cmyk_jpeg(tmp_path):
    Image.new('RGB', (40, 40), (200, 100, 50)).convert('CMYK').save(tmp_path / 'print.jpg', quality=95)
    assert Image.open(tmp_path / 'print.jpg').mode == 'CMYK'
    with pytest.warns(UserWarning, match=r'are CMYK: converted to RGB .*print.jpg'):
        im = np.asarray(open_image(tmp_path / 'print.jpg'))
    assert np.abs(im.reshape(-1, 3).mean(0) - [200, 100, 50]).max() < 8

def test_image_exif_rotated(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8); arr[:, :20] = (255, 0, 0); arr[:, 20:] = (0, 0, 255)  # red | blue
    im = Image.fromarray(arr); exif = im.getexif(); exif[0x0112] = 6                  # "rotate 90 deg clockwise"
    im.save(tmp_path / 'phone.jpg', exif=exif, quality=95)
    up = np.asarray(_no_warnings(open_image, tmp_path / 'phone.jpg')).astype(int)
    assert up.shape == (40, 20, 3)                                                       # turned upright
    assert up[:20, :, 0].mean() > 200 and up[20:, :, 2].mean() > 200                   # red on top, blue below

def test_image_1x1_px(tmp_path):
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(tmp_path / 'dot.png')
    with pytest.warns(UserWarning, match=r'more than 4x smaller than the cache side: upscaled.*dot.png'):
        a = presize(tmp_path / 'dot.png', SIZE)
    assert a.shape == (3, SIZE, SIZE) and (a.reshape(3, -1).T == [10, 20, 30]).all()

@pytest.mark.parametrize('fmt,shape', [('jpeg', (10_000, 10_000)), ('png', (10_000, 1_500))])
def test_image_10000_px(tmp_path, fmt, shape):
    f = tmp_path / f'scan.{fmt}'
    Image.new('RGB', shape, (200, 100, 50)).save(f, format=fmt.upper(), **({'quality': 80} if fmt == 'jpeg' else {'compress_level': 1}))
    a = _no_warnings(presize, f, SIZE)
    assert a.shape == (3, SIZE, SIZE) and np.abs(a.reshape(3, -1).mean(1) - [200, 100, 50]).max() < 3

def test_image_beyond_pixel_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1_000)   # stands in for a > 500-megapixel file
    Image.fromarray(_rgb(100, 100)).save(tmp_path / 'bomb.png')
    with pytest.raises(DatasetError) as e: presize(tmp_path / 'bomb.png', SIZE)
    assert 'bomb.png: image is too large to decode safely' in _msg(e) and 'downscale it' in _msg(e)

def test_image_many_bad_files_reported_together(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / 'good.png')
    (tmp_path / 'empty.png').write_bytes(b''); (tmp_path / 'text.png').write_text('x')
    with pytest.raises(DatasetError) as e:
        ImageCache(SIZE, tmp_path / 'c').load([tmp_path / n for n in ('good.png', 'empty.png', 'text.png', 'gone.png')])
    m = _msg(e)
    assert m.startswith('3 of 4 image(s) cannot be used') and all(n in m for n in ('empty.png', 'text.png', 'gone.png'))

def test_image_conversions_summarised_once(tmp_path):
    for i in range(5): Image.fromarray(np.full((2, 2), i * 9000, np.uint16)).save(tmp_path / f's{i}.png')
    with pytest.warns(UserWarning) as rec:
        ImageCache(SIZE, tmp_path / 'c').load([tmp_path / f's{i}.png' for i in range(5)])
    msgs = [str(w.message) for w in rec]
    assert sum('5 image(s) have 16 bits per channel' in m for m in msgs) == 1
    assert sum('5 image(s) are more than 4x smaller' in m for m in msgs) == 1

# ================================================================================================ metadata

def test_missing_required_column(pad):
    write_meta(pad, read_meta(pad).rename(columns={'age': 'Age'}))
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    m = _msg(e)
    assert 'metadata.csv' in m and "missing column(s) ['age']" in m and "found 'Age' (names are case-sensitive)" in m

def test_extra_columns_ignored(pad):
    write_meta(pad, read_meta(pad).assign(notes='free text', **{'Unnamed: 0': range(60)}))
    df, spec = _no_warnings(load_pad_ufes20, pad)
    assert len(df) == 60 and 'notes' not in df.columns and 'notes' not in spec.meta_names

def test_label_not_in_class_list(pad, tmp_path):
    m = read_meta(pad); m.loc[7, 'diagnostic'] = 'MELANOMA'; m.loc[9, 'diagnostic'] = 'bcc'
    write_meta(pad, m)
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    assert "label values ['MELANOMA', 'bcc'] are not among the classes" in _msg(e) and 'rows [7, 9]' in _msg(e)
    assert 'case- and space-sensitive' in _msg(e)
    csv = make_csv(tmp_path / 'u', {'file': ['im/a.png', 'im/b.png'], 'dx': ['MEL', 'SCC']})
    with pytest.raises(DatasetError) as e: load_csv(csv, 'file', 'dx', classes=['MEL', 'NEV'])
    assert "my.csv: label values ['SCC']" in _msg(e) and 'row [1]' in _msg(e)

def test_label_blank(pad):
    m = read_meta(pad); m.loc[3, 'diagnostic'] = ''
    write_meta(pad, m)
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    assert 'metadata.csv: the label is blank in row [3]' in _msg(e)

@pytest.mark.parametrize('token', ['', 'UNK', 'NaN', 'unknown', ' N/A '])
def test_missing_token_in_categorical(pad, token):
    m = read_meta(pad); m.loc[0, 'region'] = token
    write_meta(pad, m)
    df, spec = load_pad_ufes20(pad)
    assert pd.isna(df.region[0])
    cats, _ = MetaPreprocessor.from_spec(spec).fit(df).transform(df)
    assert cats[0, spec.cat_names.index('region')] == 0               # the "unknown" slot

@pytest.mark.parametrize('token', ['', 'UNK', 'NaN', 'nan'])
def test_missing_token_in_numeric(pad, token):
    m = read_meta(pad); m.loc[0, 'age'] = token
    write_meta(pad, m)
    df, spec = load_pad_ufes20(pad)
    mp = MetaPreprocessor.from_spec(spec).fit(df)
    cats, conts = mp.transform(df)
    k = spec.cont_names.index('age')
    assert pd.isna(df.age[0]) and cats[0, len(spec.cat_names) + k] == 2      # `age_na` indicator set
    assert np.isclose(conts[0, k] * mp.stats['age']['std'] + mp.stats['age']['mean'], mp.stats['age']['median'], atol=1e-3)

def test_numeric_column_with_text(pad):
    m = read_meta(pad); m.loc[4, 'age'] = 'sixty'
    write_meta(pad, m)
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    assert "metadata.csv: numeric column 'age' has non-numeric values ['sixty'] (row [4])" in _msg(e)

def test_numeric_decimal_comma(pad):
    m = read_meta(pad); m.loc[2, 'diameter_1'] = '7,5'
    write_meta(pad, m)
    with pytest.warns(UserWarning, match=r"numeric column 'diameter_1' uses a decimal comma \(e.g. '7,5'\)"):
        df, _ = load_pad_ufes20(pad)
    assert df.diameter_1[2] == 7.5

@pytest.mark.parametrize('age', ['-5', '250', '1e20', 'inf'])
def test_negative_or_absurd_age(pad, age):
    m = read_meta(pad); m.loc[5, 'age'] = age
    write_meta(pad, m)
    df, spec = load_pad_ufes20(pad)
    with pytest.warns(UserWarning, match=r"column 'age': 1 value\(s\) outside .* in row 5\) treated as missing"):
        mp = MetaPreprocessor.from_spec(spec).fit(df)
    cats, conts = mp.transform(df, warn=False)
    assert cats[5, len(spec.cat_names) + spec.cont_names.index('age')] == 2 and np.isfinite(conts).all()
    assert 0 < mp.stats['age']['mean'] < 120

def test_category_seen_only_at_inference(pad):
    df, spec = load_pad_ufes20(pad)
    mp = MetaPreprocessor.from_spec(spec).fit(df)
    new = df.iloc[:2].copy(); new['region'] = ['MARS', 'FACE']
    with pytest.warns(UserWarning, match=r"column 'region': categories \['MARS'\] were not seen in training; encoded as unknown"):
        cats, _ = mp.transform(new)
    k = spec.cat_names.index('region')
    assert cats[0, k] == 0 and cats[1, k] == mp.classes['region'].index('FACE') + 1

def test_duplicated_image_ids_pad(pad):
    m = read_meta(pad); write_meta(pad, pd.concat([m, m.iloc[[3]]], ignore_index=True))
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    assert f"metadata.csv: column 'img_id' repeats value(s) ['{m.img_id[3]}'] (rows [3, 60])" in _msg(e)

def test_duplicated_image_ids_isic(tmp_path):
    root = make_isic(tmp_path / 'isic')
    md = pd.read_csv(root / 'ISIC_2019_Training_Metadata.csv')
    pd.concat([md, md.iloc[[1]]]).to_csv(root / 'ISIC_2019_Training_Metadata.csv', index=False)
    with pytest.raises(DatasetError) as e: load_isic2019(root)
    assert "ISIC_2019_Training_Metadata.csv: column 'image' repeats value(s) ['ISIC_0000001']" in _msg(e)

def test_duplicated_image_ids_csv(tmp_path):
    csv = make_csv(tmp_path, {'file': ['im/a.png', 'im/b.png', 'im/a.png'], 'dx': ['MEL', 'NEV', 'MEL']})
    with pytest.raises(DatasetError) as e: load_csv(csv, 'file', 'dx')
    assert "my.csv: column 'file' repeats value(s) ['im/a.png'] (rows [0, 2])" in _msg(e)

def test_rows_without_images(pad):
    m = read_meta(pad); gone = [m.img_id[i] for i in (1, 2)]
    for f in (pad / 'images').rglob('*.png'):
        if f.name in gone: f.unlink()
    with pytest.warns(UserWarning, match=rf"2 of 60 rows have no image file \(first: {gone[0]}, {gone[1]}\); these rows are dropped"):
        df, _ = load_pad_ufes20(pad)
    assert len(df) == 58 and not set(gone) & set(df.id)
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad, on_missing='raise')
    assert '2 of 60 rows have no image file' in _msg(e)

def test_images_without_rows(pad):
    m = read_meta(pad); write_meta(pad, m.iloc[3:])
    with pytest.warns(UserWarning, match=r"metadata.csv: 3 image file\(s\) have no metadata row and are not used"):
        df, _ = load_pad_ufes20(pad)
    assert len(df) == 57

def test_same_image_name_in_two_folders(pad):
    f = next((pad / 'images').rglob('*.png'))
    (pad / 'images' / 'copy').mkdir(); shutil.copy(f, pad / 'images' / 'copy' / f.name)
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    assert f"1 image file name(s) occur in more than one sub-folder ({f.name} in" in _msg(e)

def test_class_with_fewer_members_than_folds(pad):
    df, _ = load_pad_ufes20(pad)
    mel_groups = df[df.label == 'MEL'].group.unique()
    df = df[(df.label != 'MEL') | df.group.isin(mel_groups[:2])]
    with pytest.raises(DatasetError) as e: kfold_splits(df, 5)
    assert "class(es) {'MEL': 2} have fewer groups (patients/lesions) than the 5 folds" in _msg(e) and 'use --folds <= 2' in _msg(e)

def test_fewer_groups_than_folds(pad):
    df, _ = load_pad_ufes20(pad)
    with pytest.raises(DatasetError) as e: kfold_splits(df.assign(group=df.group.map(lambda g: hash(g) % 3)), 5)
    assert 'only 3 groups (patients/lesions) for 5 folds; use --folds <= 3' in _msg(e)

@pytest.mark.parametrize('content,expect', [(b'', 'the file is empty (0 bytes)'), (b'\n\n  \n', 'the file has only blank lines'),
                                            (b'img_id,diagnostic\n', 'has a header but no rows')])
def test_empty_csv(tmp_path, content, expect):
    (tmp_path / 'metadata.csv').write_bytes(content)
    with pytest.raises(DatasetError) as e: read_table(tmp_path / 'metadata.csv')
    assert f"metadata.csv: {expect}" in _msg(e)

@pytest.mark.parametrize('sep,bom', [(';', True), (';', False), (',', True), ('\t', False)])
def test_csv_bom_or_separator(pad, sep, bom):
    text = read_meta(pad).to_csv(index=False, sep=sep)
    (pad / 'metadata.csv').write_bytes((b'\xef\xbb\xbf' if bom else b'') + text.encode())
    df, _ = _no_warnings(load_pad_ufes20, pad)
    assert len(df) == 60 and df.age.notna().any()

def test_csv_windows_1252(tmp_path):
    (tmp_path / 't.csv').write_bytes('file;site\nim/a.png;regi\xe3o \u20ac\n'.encode('cp1252'))
    with pytest.warns(UserWarning, match=r't.csv: is not UTF-8 text; read as Windows-1252'):
        df = read_table(tmp_path / 't.csv')
    assert df.site[0] == 'regi\xe3o \u20ac'

def test_csv_duplicate_header(tmp_path):
    (tmp_path / 't.csv').write_text('img_id,age,age\nx.png,3,4\n')
    with pytest.raises(DatasetError) as e: read_table(tmp_path / 't.csv')
    assert "t.csv: column(s) ['age'] appear more than once in the header" in _msg(e)

def test_csv_malformed_row(tmp_path):
    (tmp_path / 't.csv').write_text('a,b\n1,2\n3,4,5,6\n')
    with pytest.raises(DatasetError) as e: read_table(tmp_path / 't.csv')
    assert "t.csv: cannot be parsed as CSV with separator ','" in _msg(e) and 'line 3' in _msg(e)

def test_csv_trailing_empty_rows(pad):
    text = read_meta(pad).to_csv(index=False, sep=';') + ';' * 25 + '\n' + ';' * 25 + '\n'
    (pad / 'metadata.csv').write_text(text)
    with pytest.warns(UserWarning, match=r'metadata.csv: 2 completely empty row\(s\) \(rows \[60, 61\]\) skipped'):
        df, _ = load_pad_ufes20(pad)
    assert len(df) == 60

def test_image_folder_missing(pad):
    shutil.rmtree(pad / 'images')
    with pytest.raises(DatasetError) as e: load_pad_ufes20(pad)
    assert 'images: image folder not found' in _msg(e)

def test_isic_ground_truth_not_one_hot(tmp_path):
    root = make_isic(tmp_path / 'isic')
    gt = pd.read_csv(root / 'ISIC_2019_Training_GroundTruth.csv'); gt.loc[4, 'BCC'] = 1.0
    gt.to_csv(root / 'ISIC_2019_Training_GroundTruth.csv', index=False)
    with pytest.raises(DatasetError) as e: load_isic2019(root)
    assert 'ISIC_2019_Training_GroundTruth.csv: row [4] are not one-hot' in _msg(e)

def test_data_labels_outside_spec_classes(pad):
    df, spec = load_pad_ufes20(pad)
    df.loc[0, 'label'] = 'UNK'
    with pytest.raises(DatasetError) as e:
        ImageMetaDataLoaders.from_df(df, spec, valid_idx=np.arange(10), size=SIZE, images=np.zeros((60, 3, 36, 36), np.uint8), device='cpu')
    assert "data frame: label values ['UNK'] are not among the classes" in _msg(e)

# ================================================================================================ model files

@pytest.fixture(scope='module')
def model_dir(pad_src, tmp_path_factory):
    "An untrained resnet10t JIF-MMFA (32 px) saved with export_jif."
    from jif_fastai.learner import jif_learner; from jif_fastai.inference import export_jif
    df, spec = load_pad_ufes20(pad_src)
    tr, va = kfold_splits(df, 3, seed=0)[0]
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=va, train_idx=tr, size=SIZE, bs=8, device='cpu',
                                       cache_dir=tmp_path_factory.mktemp('cache'), seed=0)
    learn = jif_learner(dls, 'resnet10t', pretrained=False)
    return export_jif(learn, tmp_path_factory.mktemp('models') / 'm')

@pytest.fixture
def model_copy(model_dir, tmp_path):
    return Path(shutil.copytree(model_dir, tmp_path / 'm'))

def test_model_truncated(model_copy):
    from jif_fastai.inference import load_jif, ModelFileError
    w = model_copy / 'model.safetensors'; w.write_bytes(w.read_bytes()[:5000])
    with pytest.raises(ModelFileError) as e: load_jif(model_copy)
    assert 'model.safetensors: checksum differs from the one in config.json (file truncated' in _msg(e)

EDITS = {
    'json_syntax': (lambda c: None, 'not valid JSON'),
    'backbone': (lambda c: c['model'].update(backbone='resnet18'), 'does not describe the weights'),
    'fusion': (lambda c: c['model'].update(fusion='concat'), 'does not describe the weights'),
    'unknown_backbone': (lambda c: c['model'].update(backbone='resnet10t_typo'), "Unknown timm backbone 'resnet10t_typo'"),
    'class_count': (lambda c: c['classes'].append('XYZ'), 'does not describe the weights'),
    'class_repeated': (lambda c: c['classes'].__setitem__(1, c['classes'][0]), "'classes' must be a non-empty list of distinct names"),
    'category_removed': (lambda c: c['preproc']['classes']['region'].pop(), 'does not describe the weights'),
    'size_text': (lambda c: c.update(size='32'), "'size' must be an integer >= 1"),
    'decision_weights': (lambda c: c['decision_weights'].pop(), 'decision weights for the branches'),
    'preproc_missing': (lambda c: c.pop('preproc'), "KeyError: 'preproc'"),
    'format': (lambda c: c.update(format='other/1'), 'not a jif_fastai-model/1 config'),
    'stats': (lambda c: c.update(stats=[[0.5, 0.5], [0.5, 0.5, 0.5]]), "'stats' must be [mean, std] of 3 channel numbers each"),
}

@pytest.mark.parametrize('edit', list(EDITS))
def test_model_edited_config(model_copy, edit):
    from jif_fastai.inference import load_jif, ModelFileError
    fn, expect = EDITS[edit]
    cf = model_copy / 'config.json'
    if edit == 'json_syntax': cf.write_text(cf.read_text()[:-20])
    else:
        cfg = json.loads(cf.read_text()); fn(cfg); cf.write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError) as e: load_jif(model_copy)
    assert 'config.json' in _msg(e) and expect in _msg(e)

def test_model_folder_missing_or_pickle_only(tmp_path):
    from jif_fastai.inference import load_jif, ModelFileError
    with pytest.raises(ModelFileError) as e: load_jif(tmp_path / 'nowhere')
    assert 'nowhere: model folder not found' in _msg(e)
    (tmp_path / 'old').mkdir(); (tmp_path / 'old' / 'export.pkl').write_bytes(b'\x80\x04N.')
    with pytest.raises(ModelFileError) as e: load_jif(tmp_path / 'old')
    assert "['export.pkl'] look like pickled models, which are never loaded" in _msg(e)

def test_model_class_list_mismatch_with_data(model_dir, pad_src):
    from jif_fastai.inference import load_jif
    pred = load_jif(model_dir)
    df, spec = load_pad_ufes20(pad_src)
    with pytest.raises(DatasetError) as e: pred.check_data(df, classes=ISIC_CLASSES)
    assert 'data: classes' in _msg(e) and 'differ from those of the model in' in _msg(e) and str(PAD_CLASSES) in _msg(e)
    with pytest.raises(DatasetError) as e: pred.check_data(df, classes=PAD_CLASSES[::-1])
    assert 'same names, other order' in _msg(e)
    with pytest.raises(DatasetError) as e: pred.predict_df(df.iloc[:4].assign(label=['NV', 'NV', 'MEL', 'BKL']), label_col='label')
    assert "labels ['BKL', 'NV'] in column 'label' (3 rows) are not classes of the model" in _msg(e)

def test_model_metadata_columns_missing_at_prediction(model_dir, pad_src):
    from jif_fastai.inference import load_jif
    df, _ = load_pad_ufes20(pad_src)
    with pytest.raises(DatasetError) as e: load_jif(model_dir).predict_df(df.iloc[:2].drop(columns=['age', 'region']))
    assert "data: missing column(s) ['region', 'age']" in _msg(e)

def test_model_prediction_image_unreadable(model_dir, pad_src, tmp_path):
    from jif_fastai.inference import load_jif
    df, _ = load_pad_ufes20(pad_src)
    (tmp_path / 'bad.png').write_text('x')
    with pytest.raises(DatasetError) as e: load_jif(model_dir).predict_df(df.iloc[:2].assign(image=[df.image[0], tmp_path / 'bad.png']))
    assert '1 of 2 image(s) cannot be used' in _msg(e) and 'bad.png: cannot be read as an image' in _msg(e)

# ================================================================================================ training setup

def test_unknown_backbone(pad_src):
    from jif_fastai.learner import jif_learner
    df, spec = load_pad_ufes20(pad_src)
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=np.arange(0, 60, 4), size=SIZE, device='cpu',
                                       images=np.zeros((60, 3, 36, 36), np.uint8))
    with pytest.raises(ValueError, match=r"Unknown timm backbone 'resnet50x'; did you mean one of"):
        jif_learner(dls, 'resnet50x', pretrained=False)

# ================================================================================================ command line

CLI_CASES = {   # row -> (arguments, what the one-line error must say)
    'unknown_backbone': (['--backbone', 'resnet51'], "Unknown timm backbone 'resnet51'; did you mean one of ['resnet51q', 'resnet50'"),
    'conflicting_flags': (['--dataset', 'pad-ufes-20', '--split', 'official'], '--split official needs --dataset derm7pt'),
    'unwritable_output': (['--out', '{tmp}/a_file/run'], '/a_file/run: cannot write there (Not a directory)'),
}

@pytest.fixture(scope='module')
def cli_runs(tmp_path_factory):
    "Run `jif-fastai train` with each bad argument set, all at once (each is a fresh Python process)."
    import os, subprocess, sys
    exe = Path(sys.executable).parent / 'jif-fastai'
    if not exe.exists(): pytest.skip(f'{exe} not installed')
    tmp = tmp_path_factory.mktemp('cli'); (tmp / 'a_file').write_text('not a folder')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    procs = {k: subprocess.Popen([str(exe), 'train', *[a.format(tmp=tmp) for a in args]], cwd=tmp, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k, (args, _) in CLI_CASES.items()}
    return {k: (p.wait(120), *p.communicate()) for k, p in procs.items()}, tmp

@pytest.mark.parametrize('case', list(CLI_CASES))
def test_cli_bad_arguments(cli_runs, case):
    runs, tmp = cli_runs
    code, out, err = runs[case]
    assert code == 2 and err.startswith('jif-fastai train: error: ') and CLI_CASES[case][1] in err, (code, err[-2000:])
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err       # one clear line, no traceback
    assert not (tmp / 'runs').exists()                                         # refused before anything was written

# ============================================================================ found by the second round (issue 15)

import jif_fastai.cli as cli
from jif_fastai.cv import run_cv, check_run_dir, TrainingGuard, TrainingError, run_images, RunConfigError
from jif_fastai.data import keep_classes

TINY_RUN = ['--backbone', 'resnet10t', '--no-pretrained', '--epochs', '1', '--size', '32', '--no-pictures']

def _cli(capsys, *argv):
    "`jif-fastai ARGV` in this process: (exit status, stdout, stderr)."
    try: code = cli.main([str(a) for a in argv])
    except SystemExit as e: code = e.code
    o, e = capsys.readouterr()
    return code, o, e

def _one_line_error(code, err, cmd='train'):
    assert code == 2 and err.startswith(f'jif-fastai {cmd}: error: '), err[-2000:]
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err, err

def _csv_dataset(pad, **cols) -> Path:
    "The sample as a user CSV `my.csv` (file, dx, pid, region, age, plus `cols`)."
    m = read_meta(pad)
    files = {p.name: p.relative_to(pad).as_posix() for p in (pad / 'images').rglob('*.png')}
    t = pd.DataFrame({'file': m.img_id.map(files), 'dx': m.diagnostic, 'pid': m.patient_id, 'region': m.region, 'age': m.age, **cols})
    t.to_csv(pad / 'my.csv', index=False)
    return pad / 'my.csv'

# --- silent wrong results

def test_fold_smaller_than_batch_refused(pad, capsys, tmp_path):
    "A fold whose training part is smaller than one batch would take no optimiser step: refused before the run folder."
    code, o, e = _cli(capsys, 'train', '--root', pad, '--folds', 2, '--bs', 64, *TINY_RUN, '--out', tmp_path / 'run')
    _one_line_error(code, e)
    assert 'fold 0 has 30 training rows < batch size 64, so no optimiser step would run: use --bs 16 or fewer folds' in e
    assert not (tmp_path / 'run' / 'run.json').exists()

def test_epoch_without_step_or_with_nonfinite_loss_stops(pad_src):
    "During training: an epoch without an optimiser step, or a loss that is not finite, stops the fit with the reason."
    from jif_fastai.learner import jif_learner
    df, spec = load_pad_ufes20(pad_src)
    dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=range(50, 60), bs=8, size=SIZE, device='cpu',
                                       images=run_images(df, spec, SIZE, needed=False))
    learn = jif_learner(dls, 'resnet10t', structure='meta', pretrained=False)
    dls.train.bs = 64
    with learn.no_bar(), learn.no_logging(), pytest.raises(TrainingError, match=r'fold 2 epoch 1: no optimiser step ran \(50 training rows, batch size 64'):
        learn.fit(1, 1e-3, cbs=TrainingGuard(2))
    dls.train.bs = 8
    with learn.no_bar(), learn.no_logging(), pytest.raises(TrainingError, match=r'the training loss is nan \(training diverged\): lower the learning rate'):
        learn.fit(1, float('nan'), cbs=TrainingGuard(2))

def test_one_class_refused(pad_src, tmp_path):
    "One class (`--classes MEL`, or a frame with one class) cannot make a classifier."
    df, spec = load_pad_ufes20(pad_src)
    with pytest.raises(DatasetError, match=r'is one class; a classifier needs at least two'): keep_classes(df, spec, ['MEL'])
    from dataclasses import replace
    one = (df[df.label == 'MEL'], replace(spec, classes=['MEL']))
    with pytest.raises(DatasetError, match='a classifier needs at least two'): run_cv(one, out_dir=tmp_path / 'r', progress=False)
    assert not (tmp_path / 'r').exists()

@pytest.mark.parametrize('kw,msg', [(dict(epochs=0), 'epochs 0: must be an integer >= 1 (0 epochs would score untrained models)'),
                                    (dict(lr=-1.), 'lr -1.0: must be a number > 0'), (dict(bs=0), 'bs 0: must be an integer >= 2'),
                                    (dict(size=0), 'size 0: must be an integer >= 8')])
def test_meaningless_settings_refused_in_python(pad_src, tmp_path, kw, msg):
    import re
    with pytest.raises(ValueError, match=re.escape(msg)): run_cv('pad-ufes-20', root=pad_src, out_dir=tmp_path / 'r', progress=False, **kw)
    assert not (tmp_path / 'r').exists()

def test_image_float_tiff(tmp_path):
    "A 32-bit float TIFF with values in 0-1 is scaled to 0-255 (not black), with a warning; beyond 0-1 it is clipped."
    a = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    Image.fromarray(a).save(tmp_path / 'f.tif')
    with pytest.warns(UserWarning, match=r'1 image\(s\) are 32-bit floating point with values in 0-1: scaled to 0-255'):
        im = np.asarray(open_image(tmp_path / 'f.tif'))
    assert np.abs(im[..., 0].astype(int) - np.round(a * 255)).max() <= 1 and im.max() > 200
    Image.fromarray(a * 1000).save(tmp_path / 'g.tif')
    with pytest.warns(UserWarning, match='beyond 0-1: clipped to 0-255'): open_image(tmp_path / 'g.tif')

# --- tracebacks from inside pandas / sklearn / torch, now one clear line

def test_csv_group_column_blank_cells(pad):
    csv = _csv_dataset(pad)
    t = pd.read_csv(csv); t.loc[[3, 8], 'pid'] = np.nan; t.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"column 'pid' is blank in rows \[3, 8\]; fill in the patient/lesion of every row"):
        load_csv(csv, 'file', 'dx', ['region'], group_col='pid')
    t['pid'] = np.nan; t.to_csv(csv, index=False)                          # all blank: not 'only 0 groups ... --folds <= 0'
    with pytest.raises(DatasetError, match=r"column 'pid' is blank in rows \[0, 1, 2, 3, 4\] and 55 more"):
        load_csv(csv, 'file', 'dx', ['region'], group_col='pid')

def test_pad_patient_blank(pad):
    m = read_meta(pad); m.loc[[4, 9], 'patient_id'] = ''; write_meta(pad, m)
    with pytest.raises(DatasetError, match=r"metadata.csv: column 'patient_id' is blank in rows \[4, 9\]; fill in the patient of every row"):
        load_pad_ufes20(pad)

@pytest.mark.parametrize('cat,cont,msg', [(['dx'], [], "column 'dx' is the label (--label-col) column, so it cannot also be metadata"),
                                          (['file'], [], "column 'file' is the image (--image-col) column"),
                                          (['region'], ['region'], "['region'] are given as both categorical (--cat) and numeric (--cont) metadata; give each in one of them"),
                                          (['region', 'region'], [], "['region'] are listed twice")])
def test_csv_metadata_roles_conflict(pad, cat, cont, msg):
    csv = _csv_dataset(pad)
    with pytest.raises(DatasetError) as e: load_csv(csv, 'file', 'dx', cat, cont)
    assert msg in _msg(e) and str(csv) in _msg(e)

@pytest.mark.parametrize('name', ['group', 'label', 'image', 'id', 'split'])
def test_csv_metadata_named_like_internal_columns(pad, name):
    "A user's column never silently replaces the tidy frame's own `group`/`label`/... column."
    csv = _csv_dataset(pad, **{name: 'x'})
    with pytest.raises(DatasetError, match=rf"metadata column\(s\) \['{name}'\] have names jif_fastai uses for its own columns"):
        load_csv(csv, 'file', 'dx', [name], group_col='pid')

def test_symlink_loop_in_image_folder(pad):
    "Links that loop: a folder loop is skipped when indexing; a CSV row naming a looping link is one clear error."
    import os
    os.symlink('b', pad / 'images' / 'a'); os.symlink('a', pad / 'images' / 'b')
    os.symlink('loop.png', pad / 'images' / 'imgs_part_1' / 'loop.png')
    assert len(load_pad_ufes20(pad)[0]) == 60
    csv = _csv_dataset(pad); t = pd.read_csv(csv); t.loc[0, 'file'] = 'images/imgs_part_1/loop.png'; t.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"row 0: image path 'images/imgs_part_1/loop.png' cannot be resolved .*symbolic link loop"):
        load_csv(csv, 'file', 'dx', ['region'])

def test_no_metadata_then_corrected_rerun(pad, capsys, tmp_path):
    "No metadata column: refused at the door; a run.json left without any finished fold never blocks the corrected rerun."
    csv = _csv_dataset(pad)
    code, o, e = _cli(capsys, 'train', '--dataset', 'csv', '--csv', csv, '--image-col', 'file', '--label-col', 'dx', '--out', tmp_path / 'r')
    _one_line_error(code, e); assert '--dataset csv needs --cat or --cont (at least one metadata column)' in e
    out = check_run_dir(tmp_path / 'old', dict(cat=[]))                       # what an older version left behind
    assert check_run_dir(out, dict(cat=['region'])) == out                    # replaced: no fold had finished
    (out / 'folds').mkdir(); (out / 'folds' / 'fold_0.json').write_text('{}')
    with pytest.raises(RunConfigError, match="cat: \\['region'\\] there, \\[\\] now"): check_run_dir(out, dict(cat=[]))

DOOR = {   # row -> (arguments, what the one-line error must say); all refused before any image is loaded
    'bs_0': (['train', '--bs', '0'], '--bs 0: must be an integer >= 2'),
    'size_0': (['train', '--size', '0'], '--size 0: must be an integer >= 8 (pixels)'),
    'epochs_0': (['train', '--epochs', '0'], '--epochs 0: must be an integer >= 1 (0 epochs would score untrained models)'),
    'lr_negative': (['train', '--lr', '-1'], '--lr -1.0: must be a number > 0'),
    'folds_1': (['train', '--folds', '1'], '--folds 1: must be an integer >= 2'),
    'folds_0': (['train', '--folds', '0'], '--folds 0: must be an integer >= 2'),
    'lam_negative': (['train', '--lam', '-1'], '--lam -1.0: must be a number >= 0'),
    'seed_negative': (['train', '--seed', '-1'], '--seed -1: must be an integer in [0, 2**31)'),
    'threads_negative': (['train', '--threads', '-1'], '--threads -1: must be an integer >= 1'),
    'threads_0': (['train', '--threads', '0'], '--threads 0: must be an integer >= 1'),
    'device_gpu': (['train', '--device', 'gpu'], '--device gpu: not a device name torch knows; use cpu, cuda, cuda:1 or mps'),
    'device_cuda_index': (['train', '--device', 'cuda:7'], '--device cuda:7: '),
    'decision_weights_count': (['train', '--decision-weights', '1,2'], "--decision-weights (1.0, 2.0) must have one weight per branch"),
    'decision_weights_text': (['train', '--decision-weights', 'a,b,c'], '--decision-weights a,b,c: must be comma-separated numbers'),
    'decision_weights_negative': (['train', '--decision-weights', '1,-1,1'], 'must be >= 0 with a positive sum'),
    'classes_repeated': (['train', '--classes', 'MEL,MEL'], "--classes MEL,MEL: ['MEL'] listed more than once"),
    'classes_one': (['train', '--classes', 'MEL'], '--classes MEL: one class; a classifier needs at least two'),
    'csv_cat_and_cont': (['train', '--dataset', 'csv', '--csv', 'a.csv', '--image-col', 'f', '--label-col', 'dx', '--cat', 'age', '--cont', 'age'],
                         "a.csv: column(s) ['age'] are given as both categorical (--cat) and numeric (--cont) metadata"),
    'csv_label_as_cat': (['train', '--dataset', 'csv', '--csv', 'a.csv', '--image-col', 'f', '--label-col', 'dx', '--cat', 'dx'],
                         "column 'dx' is the label (--label-col) column, so it cannot also be metadata"),
    'csv_column_group': (['train', '--dataset', 'csv', '--csv', 'a.csv', '--image-col', 'f', '--label-col', 'dx', '--cat', 'group'],
                         "metadata column(s) ['group'] have names jif_fastai uses"),
    'backbone_empty': (['train', '--backbone', ','], '--backbone: no name given; give at least one'),
    'sample_no_images': (['sample', '--out', 's', '--n-images', '0'], '--n-images 0: must be an integer >= 60'),
    'sample_size_0': (['sample', '--out', 's', '--size', '0'], '--size 0: must be an integer >= 8'),
}

@pytest.mark.parametrize('case', list(DOOR))
def test_cli_refuses_at_the_door(capsys, monkeypatch, tmp_path, case):
    import torch
    if case == 'device_cuda_index' and torch.cuda.device_count() > 7: pytest.skip('this machine has 8 GPUs')
    monkeypatch.chdir(tmp_path)
    argv, msg = DOOR[case]
    code, o, e = _cli(capsys, *argv)
    _one_line_error(code, e, argv[0])
    assert msg in e, e
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 's').exists()   # nothing created

def test_cli_device_cuda_without_gpu(capsys, monkeypatch, tmp_path):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.chdir(tmp_path)
    code, o, e = _cli(capsys, 'train', '--device', 'cuda')
    _one_line_error(code, e); assert '--device cuda: no CUDA GPU is available on this machine; use --device cpu' in e

# --- unclear messages, now saying what is wrong

def test_csv_utf16(pad):
    "UTF-16 (Excel's 'Unicode text'), with or without BOM: read as such, column names intact."
    csv = _csv_dataset(pad); text = csv.read_text()
    csv.write_text(text.replace('region', 'régión'), encoding='utf-16')
    assert 'régión' in read_table(csv).columns
    csv.write_bytes(text.encode('utf-16-le'))
    assert list(read_table(csv).columns[:2]) == ['file', 'dx']

@pytest.mark.parametrize('head,what', [(b'PK\x03\x04', 'an Excel .xlsx'), (b'\xd0\xcf\x11\xe0', 'an Excel .xls file'),
                                       (b'PAR1', 'a Parquet file'), (b'\x1f\x8b', 'a gzip-compressed file')])
def test_csv_that_is_a_workbook_or_binary(tmp_path, head, what):
    (tmp_path / 'm.csv').write_bytes(head + bytes(200))
    with pytest.raises(DatasetError, match=f'm.csv: is {what}.*not a CSV text file; save it as CSV'): read_table(tmp_path / 'm.csv')

def test_csv_windows_paths(pad):
    csv = _csv_dataset(pad); t = pd.read_csv(csv); t['file'] = t.file.str.replace('/', '\\'); t.to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"60 of 60 rows have no image file .*; their paths contain backslashes, like Windows paths: write them with '/'"):
        load_csv(csv, 'file', 'dx', ['region'])

def test_class_without_images(pad):
    "A class whose images are all missing: named, with the --classes that leaves it out (fewer folds cannot help)."
    m = read_meta(pad); mel = set(m.img_id[m.diagnostic == 'MEL'])
    for f in (pad / 'images').rglob('*.png'):
        if f.name in mel: f.unlink()
    with pytest.warns(UserWarning, match='rows have no image file'): df, spec = load_pad_ufes20(pad)
    with pytest.raises(DatasetError, match=r"class\(es\) \['MEL'\] have no rows \(are their images missing\?\); no fold can contain them, however "
                                           r"many folds: leave them out with --classes ACK,BCC,NEV,SCC,SEK"):
        kfold_splits(df, 5, classes=spec.classes)
    assert keep_classes(df, spec, ['ACK', 'BCC', 'NEV', 'SCC', 'SEK'])[1].classes == ['ACK', 'BCC', 'NEV', 'SCC', 'SEK']

def test_predict_meta_json_file_broken(capsys, tmp_path):
    (tmp_path / 'm.json').write_text('{"age": 61,')
    code, o, e = _cli(capsys, 'predict', '--model', tmp_path / 'nowhere', '--image', 'x.png', '--meta', tmp_path / 'm.json')
    _one_line_error(code, e, 'predict'); assert f'--meta {tmp_path}/m.json: not valid JSON (' in e

# ============================================================================ found by the third round (issue 19)

import os, unicodedata
from jif_fastai.data import _clean_numeric

def _text_csv(root: Path, text: str, n: int = 4, name='my.csv') -> Path:
    "A CSV written byte for byte from `text`, next to PNGs im/0.png .. im/{n-1}.png."
    (root / 'im').mkdir(parents=True, exist_ok=True)
    for i in range(n): Image.fromarray(_rgb(seed=i)).save(root / 'im' / f'{i}.png')
    (root / name).write_bytes(text.encode('utf-8'))
    return root / name

def _load(csv, cat=('site',), cont=('age',), **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        df, spec = load_csv(csv, 'file', 'dx', list(cat), list(cont), **kw)
    return df, spec, [str(x.message) for x in w]

def test_csv_windows_line_endings_and_quoted_newlines(tmp_path):
    csv = _text_csv(tmp_path, 'file,dx,site,age\r\nim/0.png,MEL,"upper\r\narm",61\r\nim/1.png,NEV,leg,50\r\nim/2.png,NEV,"back, left",40\r\n', 3)
    df, spec, w = _load(csv)
    assert df.site.tolist() == ['upper\r\narm', 'leg', 'back, left'] and df.age.tolist() == [61., 50., 40.] and not w
    assert spec.classes == ['MEL', 'NEV'] and df.image.map(lambda p: Path(p).is_file()).all()

def test_csv_semicolon_with_decimal_comma(tmp_path):
    "A European Excel export: `;` between fields *and* decimal commas inside them."
    csv = _text_csv(tmp_path, '\ufefffile;dx;site;age\r\nim/0.png;MEL;arm;61,5\r\nim/1.png;NEV;leg;50\r\n', 2)
    df, _, w = _load(csv)
    assert df.age.tolist() == [61.5, 50.] and list(df.columns)[:2] == ['id', 'image']
    assert any("numeric column 'age' uses a decimal comma (e.g. '61,5')" in m for m in w)

@pytest.mark.parametrize('header,rows', [(',', ','), ('', ','), (';;', ';;')])
def test_csv_trailing_separator(tmp_path, header, rows):
    "An empty trailing column: on the header and the rows, on the rows only (pandas would shift every column into the index)."
    sep = ';' if ';' in rows else ','
    lines = [sep.join(['file', 'dx', 'site', 'age']) + header] + [sep.join(r) + rows for r in
             (['im/0.png', 'MEL', 'arm', '61'], ['im/1.png', 'NEV', 'leg', '50'])]
    df, spec, w = _load(_text_csv(tmp_path, '\n'.join(lines) + '\n', 2))
    assert df.id.tolist() == ['im/0.png', 'im/1.png'] and df.label.tolist() == ['MEL', 'NEV'] and df.age.tolist() == [61., 50.]
    assert not any('Unnamed' in c for c in read_table(tmp_path / 'my.csv').columns)

def test_csv_rows_with_more_fields_than_header(tmp_path):
    (tmp_path / 't.csv').write_text('file,dx\nim/0.png,MEL,61\nim/1.png,NEV,50\n')
    with pytest.raises(DatasetError) as e: read_table(tmp_path / 't.csv')
    assert "t.csv: rows have more fields than the header's 2 names" in _msg(e)

@pytest.mark.parametrize('blank', ['', 'NaN', 'nan', 'NA', '   '])
def test_csv_label_blank_or_nan(tmp_path, blank):
    csv = _text_csv(tmp_path, f'file,dx,site,age\nim/0.png,MEL,arm,61\nim/1.png,{blank},leg,50\nim/2.png,NEV,leg,40\n', 3)
    with pytest.raises(DatasetError) as e: load_csv(csv, 'file', 'dx', ['site'], ['age'])
    assert "my.csv: column 'dx' is blank in row [1]; fill in the label of every row" in _msg(e)

def test_csv_labels_differ_in_case_or_spaces(tmp_path):
    csv = _text_csv(tmp_path, 'file,dx,site,age\nim/0.png, MEL,arm,61\nim/1.png,mel,leg,50\nim/2.png,MEL ,leg,40\nim/3.png,nev,leg,30\n')
    df, spec, w = _load(csv)
    assert spec.classes == ['MEL', 'nev'] and df.label.tolist() == ['MEL', 'MEL', 'MEL', 'nev']     # one class, not 'MEL' and 'mel'
    assert any("labels ['mel'] differ from the class names ['MEL'] only in case (row [1]); read as those classes" in m for m in w)
    df, spec, _ = _load(csv, classes=['MEL', 'NEV'])                                                # a class list: matched to it
    assert spec.classes == ['MEL', 'NEV'] and df.label.tolist() == ['MEL', 'MEL', 'MEL', 'NEV']
    tie = _text_csv(tmp_path, 'file,dx,site,age\nim/0.png,MEL,arm,61\nim/1.png,mel,leg,50\n', name='tie.csv')
    with pytest.raises(DatasetError) as e: load_csv(tie, 'file', 'dx', ['site'], ['age'])
    assert "tie.csv: labels ['MEL', 'mel'] differ only in case and are equally frequent" in _msg(e) and '--classes' in _msg(e)

def test_numeric_with_units(tmp_path):
    csv = _text_csv(tmp_path, 'file,dx,site,age,d\nim/0.png,MEL,arm,61 years,5mm\nim/1.png,NEV,leg,50,"7,5 mm"\nim/2.png,NEV,leg,40 Years,6 mm\n', 3)
    df, _, w = _load(csv, cont=('age', 'd'))
    assert df.age.tolist() == [61., 50., 40.] and df.d.tolist() == [5., 7.5, 6.]
    assert any("numeric column 'age' writes the unit 'years' in 2 value(s) (e.g. '61 years'); read as numbers in years" in m for m in w)
    assert any("numeric column 'd' writes the unit 'mm' in 3 value(s)" in m for m in w)
    with pytest.raises(DatasetError) as e: _clean_numeric(pd.Series(['5 mm', '1 cm', '2mm', '0.5cm']), 'my.csv', 'd')
    assert "my.csv: numeric column 'd' mixes units ['mm', 'cm'] (first in row 0, row 1); convert the values to one unit" in _msg(e)

def test_metadata_column_constant_or_empty(tmp_path):
    csv = _text_csv(tmp_path, 'file,dx,site,age,gone\nim/0.png,MEL,arm,61,\nim/1.png,NEV,arm,50,\nim/2.png,NEV,arm,40,\n', 3)
    df, spec, w = _load(csv, cont=('age', 'gone'))
    assert any("metadata column(s) 'site' (always 'arm'), 'gone' (entirely empty) carry no information; they are kept" in m for m in w)
    assert spec.meta_names == ['site', 'age', 'gone']                                              # kept: the model's inputs are what you listed
    mp = MetaPreprocessor.from_spec(spec).fit(df)
    cats, conts = mp.transform(df)
    assert np.isfinite(conts).all() and (conts[:, 1] == 0).all() and (cats[:, 0] == 1).all()      # encoded harmlessly

def test_boolean_column_written_several_ways(tmp_path):
    csv = _text_csv(tmp_path, 'file,dx,smoke,age\nim/0.png,MEL,yes,61\nim/1.png,NEV,Y,50\nim/2.png,NEV,0,40\nim/3.png,MEL,False,30\n')
    df, spec, w = _load(csv, cat=('smoke',))
    assert df.smoke.tolist() == ['True', 'True', 'False', 'False']
    assert sum("column 'smoke' writes yes/no in 4 ways; read as {'0': 'False', 'False': 'False', 'Y': 'True', 'yes': 'True'}" in m for m in w) == 1
    mp = MetaPreprocessor.from_spec(spec).fit(df)
    assert mp.classes['smoke'] == ['False', 'True']                                                # two answers, not four categories
    at_predict = _no_warnings(mp.transform, pd.DataFrame({'smoke': ['y', 'NO', 'true'], 'age': [40, 50, 60]}))[0][:, 0]
    assert at_predict.tolist() == [2, 1, 2]                          # other spellings at prediction: the same answers, not 'unseen'

def test_image_path_is_a_folder(tmp_path):
    csv = _text_csv(tmp_path, 'file,dx,site,age\nim/0.png,MEL,arm,61\nim,NEV,leg,50\nim/2.png,NEV,leg,40\n', 3)
    with pytest.raises(DatasetError) as e: load_csv(csv, 'file', 'dx', ['site'], ['age'])
    assert "my.csv: image path(s) ['im'] (row [1]) are folders, not image files; name one image file in each row" in _msg(e)
    with pytest.raises(DatasetError) as e: presize(tmp_path / 'im', SIZE)                          # e.g. predict --image FOLDER
    assert 'im: is a folder, not an image file' in _msg(e)

@pytest.mark.parametrize('disk', ['NFC', 'NFD'])
def test_image_non_ascii_file_names(tmp_path, disk):
    "'lésion_ü.png' typed in the CSV (NFC) and stored by macOS (NFD), or the other way round."
    name = 'lésion_ü'
    on_disk, in_csv = unicodedata.normalize(disk, name), unicodedata.normalize('NFD' if disk == 'NFC' else 'NFC', name)
    assert on_disk != in_csv
    (tmp_path / f'Patiënt_{on_disk}').mkdir()
    for i in range(2): Image.fromarray(_rgb(seed=i)).save(tmp_path / f'Patiënt_{on_disk}' / f'{on_disk}_{i}.png')
    (tmp_path / 'my.csv').write_text(f'file,dx,age\nPatiënt_{in_csv}/{in_csv}_0.png,MEL,61\nPatiënt_{in_csv}/{in_csv}_1.png,NEV,50\n', encoding='utf-8')
    df, _ = _no_warnings(load_csv, tmp_path / 'my.csv', 'file', 'dx', [], ['age'])
    assert len(df) == 2 and all(Path(p).is_file() for p in df.image)
    assert ImageCache(SIZE, tmp_path / 'c').load(df.image.tolist()).shape == (2, 3, SIZE, SIZE)

def _png48(path: Path, a: np.ndarray) -> None:
    "Write (h, w, 3) uint16 `a` as a 16-bit-per-channel RGB PNG (Pillow cannot write these itself)."
    import struct, zlib
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    raw = b''.join(b'\x00' + row.astype('>u2').tobytes() for row in a)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', a.shape[1], a.shape[0], 16, 2, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))

def test_image_16bit_rgb_png(tmp_path):
    "A 48-bit RGB PNG (a scanner's export): the top 8 bits are kept, with the 16-bit warning of row 7 (it used to be silent)."
    a = (np.arange(40 * 50 * 3, dtype=np.uint32).reshape(40, 50, 3) * 10 % 65536).astype(np.uint16)
    _png48(tmp_path / 'scan48.png', a)
    with pytest.warns(UserWarning, match=r'16 bits per channel: reduced to 8 bits .*scan48.png'):
        im = np.asarray(open_image(tmp_path / 'scan48.png'))
    np.testing.assert_array_equal(im, (a >> 8).astype(np.uint8))

@pytest.mark.parametrize('kind', ['rgba_named_jpg', 'grey_jpeg'])
def test_image_jpeg_modes(tmp_path, kind):
    "An RGBA image saved as `.jpg` (JPEG has no alpha: it is a PNG inside), and a greyscale JPEG: decoded by content, silently."
    rgb = np.full((40, 50, 3), (200, 100, 50), np.uint8)
    if kind == 'rgba_named_jpg': Image.fromarray(rgb).convert('RGBA').save(tmp_path / 'x.jpg', format='PNG')
    if kind == 'grey_jpeg': Image.fromarray(rgb).convert('L').save(tmp_path / 'x.jpg', quality=95)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); a = presize(tmp_path / 'x.jpg', SIZE)
    assert a.shape == (3, SIZE, SIZE)
    want = [Image.fromarray(rgb).convert('L').getpixel((0, 0))] * 3 if kind == 'grey_jpeg' else [200, 100, 50]
    assert np.abs(a.reshape(3, -1).mean(1) - want).max() < 8
    assert not w                                                                                    # lossless: silent

def test_image_corrupt_files_in_the_middle(tmp_path):
    "Damaged files among good ones: one error listing all of them (stop with the list), none cached, the good ones are."
    paths = []
    for i in range(8):
        Image.fromarray(_rgb(seed=i)).save(tmp_path / f'{i}.png'); paths.append(tmp_path / f'{i}.png')
    paths[3].write_bytes(paths[3].read_bytes()[:60]); paths[5].write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(50))
    cache = ImageCache(SIZE, tmp_path / 'c')
    with pytest.raises(DatasetError) as e: cache.load(paths)
    assert _msg(e).startswith('2 of 8 image(s) cannot be used') and '3.png' in _msg(e) and '5.png' in _msg(e)
    assert len(list((tmp_path / 'c').rglob('*.npy'))) == 6

def test_cli_out_is_a_file_or_read_only(capsys, tmp_path):
    (tmp_path / 'a_file').write_text('x')
    code, o, e = _cli(capsys, 'train', *TINY_RUN, '--out', tmp_path / 'a_file')
    _one_line_error(code, e); assert f'--out {tmp_path}/a_file: is a file, not a folder; give a folder for the run' in e
    # A read-only folder: chmod does not stop root (as here), so use one the kernel itself refuses to write, even to root.
    ro = Path('/sys/kernel')
    if not ro.is_dir(): pytest.skip('no /sys/kernel here (not Linux)')
    for out in (ro, ro / 'jif-run'):
        code, o, e = _cli(capsys, 'train', *TINY_RUN, '--out', out)
        _one_line_error(code, e); assert f'--out {out}: cannot write there (' in e

def test_predict_meta_field_the_model_never_saw(model_dir, pad_src, capsys):
    from jif_fastai.inference import load_jif
    img = next((pad_src / 'images').rglob('*.png'))
    code, o, e = _cli(capsys, 'predict', '--model', model_dir, '--image', img, '--meta', '{"Age": 61, "region": "ARM"}')
    _one_line_error(code, e, 'predict'); assert "'Age' is not a field this model uses: did you mean 'age'?" in e
    with pytest.warns(UserWarning, match=r"metadata keys \['patient_id'\] are not used by this model"):
        label, probs, _ = load_jif(model_dir).predict(img, {'age': 61, 'patient_id': 'PAT_1'})   # unrelated: named, not fatal
    assert label in probs and abs(sum(probs.values()) - 1) < 1e-5
