"""Property test of the metadata encoder on Hypothesis-generated frames.

Whatever a metadata frame holds — NaN, +-inf, huge or tiny numbers, unicode, booleans, `UNK`, numbers as text,
mixed types in one column — `MetaPreprocessor.fit` / `transform` either return finite arrays of the right shape and
range, or raise the package's own `DatasetError` with a message naming the column. They never crash with an error from
inside pandas or NumPy, and the fitted state survives the JSON round trip the model file uses.
"""
import json, warnings

import numpy as np, pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from jif_fastai.data import DatasetError, MetaPreprocessor

ATOMS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from(['', ' ', 'UNK', 'unk', 'NaN', 'N/A', 'None', 'inf', '-Infinity', '1e400', '42', ' 7.5 ', '1,5',
                     'BRASIL', 'BRAZIL', 'True', 'FACE', 'ação', '😀', 'nan']),
    st.text(max_size=6))
NUMBERS = st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(['', 'UNK', 'NaN', '3', ' 4.5', '1,5', 'inf', '1e308', '-0']))

def column(n, elements): return st.lists(elements, min_size=n, max_size=n)

@st.composite
def frames(draw, n=None, cat_names=None, cont_names=None):
    "A metadata frame: some categorical columns of anything, some numeric-ish columns (mostly numbers, sometimes not)."
    n = draw(st.integers(0, 12)) if n is None else n
    cat_names = cat_names if cat_names is not None else [f'c{i}' for i in range(draw(st.integers(0, 3)))]
    cont_names = cont_names if cont_names is not None else [f'x{i}' for i in range(draw(st.integers(0, 3)))]
    data = {c: pd.Series(draw(column(n, ATOMS)), dtype=object) for c in cat_names}
    for c in cont_names:
        kind = draw(st.sampled_from(['float', 'int', 'object', 'anything']))
        if kind == 'float': data[c] = pd.Series(draw(column(n, st.floats(allow_nan=True, allow_infinity=True))), dtype='float64')
        elif kind == 'int': data[c] = pd.Series(draw(column(n, st.integers(-2**62, 2**62))), dtype='int64')
        elif kind == 'object': data[c] = pd.Series(draw(column(n, NUMBERS)), dtype=object)
        else: data[c] = pd.Series(draw(column(n, ATOMS)), dtype=object)
    if draw(st.booleans()): data['extra'] = pd.Series(draw(column(n, ATOMS)), dtype=object)  # ignored column
    return pd.DataFrame(data, index=pd.RangeIndex(n)), cat_names, cont_names

def check_encoded(mp, df, cats, conts):
    n = len(df)
    assert cats.dtype == np.int64 and cats.shape == (n, len(mp.cat_names) + len(mp.cont_names))
    assert conts.dtype == np.float32 and conts.shape == (n, len(mp.cont_names))
    assert np.isfinite(conts).all()
    assert ((cats >= 0) & (cats < np.array(mp.cat_cards, dtype=np.int64))).all()

def encode_or_clear_error(fn):
    "Run `fn`; a raised error must be our DatasetError naming what is wrong."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return fn()
    except DatasetError as e:
        assert str(e) and ('column' in str(e) or 'no training rows' in str(e)), str(e)
        return None

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_encoder_encodes_or_raises_clear_error(data):
    train, cat_names, cont_names = data.draw(frames())
    ranges = {c: (0, 120) for c in cont_names[:1]}
    mp = MetaPreprocessor(cat_names, cont_names, ranges)
    if encode_or_clear_error(lambda: mp.fit(train)) is None: return
    res = encode_or_clear_error(lambda: mp.transform(train))
    if res is not None: check_encoded(mp, train, *res)
    # the fitted state is JSON (what the model file stores) and encodes identically after the round trip
    mp2 = MetaPreprocessor.from_dict(json.loads(json.dumps(mp.to_dict(), allow_nan=False)))
    if res is not None:
        res2 = encode_or_clear_error(lambda: mp2.transform(train))
        np.testing.assert_array_equal(res2[0], res[0]); np.testing.assert_array_equal(res2[1], res[1])
    # new rows at inference: unseen categories, other types, other values
    new, _, _ = data.draw(frames(cat_names=cat_names, cont_names=cont_names))
    res = encode_or_clear_error(lambda: mp.transform(new))
    if res is not None: check_encoded(mp, new, *res)

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encoder_missing_column_is_named(data):
    train, cat_names, cont_names = data.draw(frames(n=3, cat_names=['c0', 'c1'], cont_names=['x0']))
    drop = data.draw(st.sampled_from(['c0', 'c1', 'x0']))
    try: MetaPreprocessor(cat_names, cont_names).fit(train.drop(columns=drop))
    except DatasetError as e: assert f"missing column(s) ['{drop}']" in str(e)
    else: raise AssertionError('a missing column was not reported')
