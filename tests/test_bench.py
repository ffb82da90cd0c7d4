"CPU smoke test of `jif_fastai.bench` (tiny configuration; one coarse timing assertion, cached vs full epochs: other CPU timings are noise)."
import json, math
import numpy as np, pytest, torch
from PIL import Image
from jif_fastai import sample as S
from jif_fastai.bench import run_bench, bench, TINY, SECTIONS, format_table, markdown_table, bench_sample, HostSyncCounter

@pytest.fixture(scope='module')
def res(tmp_path_factory):
    mp = pytest.MonkeyPatch(); mp.setenv('JIF_FASTAI_CACHE', str(tmp_path_factory.mktemp('cache')))
    try: yield run_bench(**TINY, device='cpu', threads=1, quiet=True)
    finally: mp.undo()

THROUGHPUT = ['limit', 'model', 'pipeline', 'pipeline_stock', 'epoch', 'epoch_stock', 'loader_raw', 'loader_cache',
              'loader_device', 'infer', 'infer_model', 'latency_cpu', 'frozen_encode', 'epoch_cached', 'epoch_frozen', 'epoch_full']

def test_every_section_ran(res):
    assert set(res) >= {'config', 'env', 'data', 'results', 'ratios', 'memory_ratios', 'protocol', 'targets'}
    assert res['skipped'] == []
    for k in THROUGHPUT:
        assert k in res['results'], k
        assert res['results'][k]['img_s'] > 0 and math.isfinite(res['results'][k]['img_s'])

def test_ratios_finite(res):
    assert res['ratios']['limit'] == 1.
    for k in THROUGHPUT: assert math.isfinite(res['ratios'][k]) and res['ratios'][k] > 0, k
    # CPU: memory is estimated (params + grads + momentum + saved activations) for the plain loops
    assert res['memory_basis'].startswith('estimate')
    assert res['memory_ratios']['limit'] == 1. and 0.5 < res['memory_ratios']['model'] < 5

def test_frozen_rows(res):
    R = res['results']
    for k in ('epoch_cached', 'epoch_frozen', 'epoch_full'): assert R[k]['epoch_s'] > 0, k
    # behaviour, not the formula: an epoch on cached features skips the backbone's forward and backward passes,
    # so even on the tiny configuration it takes well under the time of a full fine-tuning epoch
    assert R['epoch_cached']['epoch_s'] < 0.75 * R['epoch_full']['epoch_s'], (R['epoch_cached'], R['epoch_full'])
    assert R['epoch_cached']['x_full'] > 1 / 0.75 and R['epoch_cached']['x_frozen'] > 1
    assert 'full / cached =' in format_table(res)

def test_protocol_and_data(res):
    for k in ('default', 'stock'):
        p = res['protocol'][k]
        assert p['folds'] == 5 and p['epochs'] == 100 and p['images'] == 2298 and 'extrapolated' in p['method']
        assert math.isfinite(p['minutes']) and p['minutes'] > 0
    d = res['data']
    assert d['images'] == TINY['n_images'] and d['train'] + d['valid'] == d['images']
    assert d['cache_build']['cold'] and d['cache_build']['img_s'] > 0

def test_host_syncs(res):
    "The stock fastai path syncs per batch (loss to CPU, 2 augmentation resamples); the project's default path does not."
    R = res['results']
    assert R['pipeline_stock']['host_syncs_per_batch'] == 3
    assert R['pipeline']['host_syncs_per_batch'] == 0

def test_targets_only_judged_on_gpu(res):
    assert res['targets'] and all(v is None for v in res['targets'].values())

def test_json_and_tables(res):
    back = json.loads(json.dumps(res))
    assert back['config']['backbone'] == 'resnet10t' and back['config']['precision'] == 'fp32'
    t = format_table(res)
    for k in ('limit', 'model', 'pipeline_stock', 'loader_device', 'latency_cpu', 'protocol (default)'): assert k in t
    md = markdown_table([res, res]).splitlines()
    assert len(md) == 4 and md[2].startswith('| resnet10t |')

def test_cli_writes_json_and_table(tmp_path, monkeypatch):
    monkeypatch.setenv('JIF_FASTAI_CACHE', str(tmp_path/'cache'))
    r = bench(tiny=True, sections='limit,model', device='cpu', threads=1, out=str(tmp_path/'r.json'))
    saved = json.loads((tmp_path/'r.json').read_text())
    assert set(saved['results']) == {'limit', 'model'} and saved['skipped'] == []
    assert (tmp_path/'r.txt').read_text().startswith('jif_fastai bench')
    assert r['ratios']['model'] > 0

def test_bench_sample_is_make_sample(tmp_path):
    a = bench_sample(20, full_size=False, size=48, n_workers=2, cache=tmp_path/'p')
    b = S.make_sample(tmp_path/'s', n_images=20, size=48)
    assert (a/'metadata.csv').read_bytes() == (b/'metadata.csv').read_bytes() and S.is_complete(a)
    for f in sorted((b/'images').rglob('*.png')):
        assert np.array_equal(np.asarray(Image.open(a/f.relative_to(b))), np.asarray(Image.open(f)))

def test_sync_counter_counts_reads_only():
    with HostSyncCounter() as c:
        x = torch.arange(4.); y = x * 2; z = y.sum()
    assert c.n == 0
    with HostSyncCounter() as c: float(z); z.item(); bool(z > 0)
    assert c.n == 3
