"""Models on the Hugging Face Hub, offline: `push_to_hub` into a `LocalHub` (huggingface_hub's cache layout, checked by
`huggingface_hub.scan_cache_dir`), `load_jif('hf-hub:...')` back through `snapshot_download` with HF_HUB_OFFLINE, the
console script reading a Hub name from the environment's HF_HUB_CACHE, and one-line refusals (a card that disagrees with
the weights, a model absent from the cache, a malformed name). The real upload is replaced by a recorder of the `HfApi`
calls, checked against the real signatures: only a Hub account can test the upload itself."""
import inspect, json, os, subprocess, sys, shutil, warnings
from pathlib import Path
import pytest
from huggingface_hub import HfApi, metadata_load, scan_cache_dir
from jif_fastai.inference import load_jif, meta_fields, ModelFileError
from jif_fastai.hub import push_to_hub, hub_folder, LocalHub

EXE = shutil.which('jif-fastai', path=str(Path(sys.executable).parent)) or 'jif-fastai'
FILES = ['README.md', 'config.json', 'model.safetensors']




def test_push_then_load_by_hub_name(sample_model, tmp_path):
    mdir, rows = sample_model
    hub = LocalHub(tmp_path/'cache')
    push_to_hub(mdir, 'me/jif-test', api=hub)
    info = scan_cache_dir(hub.cache_dir)              # huggingface_hub's own reader accepts the layout
    (repo,) = info.repos
    assert repo.repo_id == 'me/jif-test' and sorted(f.file_name for f in next(iter(repo.revisions)).files) == FILES
    with hub: pred = load_jif('hf-hub:me/jif-test')
    assert pred.predict_df(rows).equals(load_jif(mdir).predict_df(rows))    # same weights, same process
    meta = metadata_load(pred.path/'README.md')
    assert meta['jif_fastai'] == dict(classes=pred.classes, fields=meta_fields(pred.preproc))
    assert meta['license'] == 'cc-by-4.0' and 'Not a medical device' in (pred.path/'README.md').read_text()


def test_console_script_reads_the_cache_named_by_the_environment(sample_model, tmp_path):
    mdir, rows = sample_model
    LocalHub(tmp_path/'cache').upload_folder('me/jif-test', hub_folder(mdir, tmp_path/'repo'))
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HUB_CACHE': str(tmp_path/'cache'), 'OMP_NUM_THREADS': '1'}
    row = rows.iloc[0]
    p = subprocess.run([EXE, 'predict', '--model', 'hf-hub:me/jif-test', '--image', row.image, '--meta', '{"age": 61}', '--json-out'],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        label, probs, _ = load_jif(mdir).predict(row.image, {'age': 61})
    r = json.loads(p.stdout)
    assert r['label'] == label and all(abs(r['probs'][c] - probs[c]) < 1e-6 for c in probs)   # same machine; JSON round trip
    p = subprocess.run([EXE, 'predict', '--model', 'hf-hub:me/absent', '--image', row.image], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert 'hf-hub:me/absent: cannot be fetched from the Hugging Face Hub' in p.stderr and 'HF_HUB_OFFLINE is set' in p.stderr


@pytest.mark.parametrize('edit,msg', [
    (lambda m: m['classes'].reverse(), 'the model card lists classes'),
    (lambda m: m['fields']['region']['values'].pop(), "the model card lists metadata field 'region' as"),
    (lambda m: m['fields'].pop('age'), "the model card lists metadata field 'age' as None"),
    (lambda m: m['fields']['age']['seen'].__setitem__(1, 999), "metadata field 'age' as")])
def test_card_that_disagrees_with_the_weights_is_refused(sample_model, tmp_path, edit, msg):
    mdir, _ = sample_model
    repo = hub_folder(mdir, tmp_path/'repo')
    text = (repo/'README.md').read_text()
    meta = metadata_load(repo/'README.md'); edit(meta['jif_fastai'])
    import yaml
    body = text.split('\n---\n', 1)[1]
    (repo/'README.md').write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n{body}")
    hub = LocalHub(tmp_path/'cache'); hub.upload_folder('me/edited', repo)
    with hub, pytest.raises(ModelFileError) as e: load_jif('hf-hub:me/edited')
    assert msg in str(e.value) and 'README.md' in str(e.value) and '\n' not in str(e.value)


def test_bad_hub_names(tmp_path):
    with LocalHub(tmp_path/'cache'):
        with pytest.raises(ModelFileError, match='not a Hub model id'): load_jif('hf-hub:a/b/c')
        with pytest.raises(ModelFileError, match='HF_HUB_OFFLINE is set'): load_jif('hf-hub:me/absent@v1')


def test_push_calls_hfapi_as_its_signatures_allow(sample_model):
    mdir, _ = sample_model
    calls = {}
    class Recorder(HfApi):
        def create_repo(self, *a, **kw):
            inspect.signature(HfApi.create_repo).bind(self, *a, **kw); calls['create'] = (a, kw); return 'https://huggingface.co/me/x'
        def upload_folder(self, *a, **kw):
            inspect.signature(HfApi.upload_folder).bind(self, *a, **kw)
            calls['upload'] = kw; calls['files'] = sorted(p.name for p in Path(kw['folder_path']).iterdir())
    assert push_to_hub(mdir, 'me/x', private=True, api=Recorder()) == 'https://huggingface.co/me/x'
    assert calls['create'] == (('me/x',), dict(private=True, exist_ok=True)) and calls['upload']['repo_id'] == 'me/x'
    assert calls['files'] == FILES     # a lone model folder: no run, so no figures
