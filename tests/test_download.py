"""`jif-fastai download` end to end against a loopback HTTP server (127.0.0.1) serving a small archive built in the
real PAD-UFES-20 layout: a dropped connection resumes, the result loads, a second call makes no request, a wrong
checksum is a one-line error (exit 2) that leaves no folder a loader would accept."""
import pytest
import jif_fastai.cli as cli
from conftest import in_process
from jif_fastai.core import file_sha256
from jif_fastai.data import load_pad_ufes20
from jif_fastai.datasets import pad_archive, registry_entry, serve_folder
from jif_fastai.sample import make_sample


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    "A folder holding zr7vgbcyr2-1.zip (nested zips, like Mendeley's) and the sha256 of its metadata.csv."
    d = tmp_path_factory.mktemp('srv')
    src = make_sample(d/'src', n_images=30, size=16)
    (d/'www').mkdir(); pad_archive(src, d/'www'/'zr7vgbcyr2-1.zip')
    return d/'www', file_sha256(src/'metadata.csv')

def test_download_resumes_loads_and_is_idempotent(served, tmp_path, capsys):
    www, sha = served
    with serve_folder(www, cut=10_000) as (url, log), \
         registry_entry('pad-ufes-20', files={'zr7vgbcyr2-1.zip': url + 'zr7vgbcyr2-1.zip'}, sha256={'metadata.csv': sha}):
        code, o, e = in_process(capsys, 'download', 'pad-ufes-20', '--dest', tmp_path/'pad')
        assert code == 0, e
        assert 'CC BY 4.0' in o and f"complete at {tmp_path/'pad'}" in o and '--root' in o
        assert [r for _, r in log] == [None, 'bytes=10000-']
        df, spec = load_pad_ufes20(tmp_path/'pad')
        assert len(df) == 30
        code, o, e = in_process(capsys, 'download', 'pad-ufes-20', '--dest', tmp_path/'pad')
        assert code == 0 and len(log) == 2                    # second call: no request
    assert sorted(p.name for p in tmp_path.iterdir()) == ['pad']

def test_wrong_checksum_is_refused(served, tmp_path, capsys):
    www, _ = served
    with serve_folder(www) as (url, log), \
         registry_entry('pad-ufes-20', files={'zr7vgbcyr2-1.zip': url + 'zr7vgbcyr2-1.zip'}, sha256={'metadata.csv': '0' * 64}):
        code, o, e = in_process(capsys, 'download', 'pad-ufes-20', '--dest', tmp_path/'pad')
    assert code == 2 and e.startswith('jif-fastai download: error: pad-ufes-20:') and len(e.strip().splitlines()) == 1
    assert 'metadata.csv has sha256' in e and 'refusing to install' in e
    assert not (tmp_path/'pad').exists() and not list(tmp_path.glob('.pad.unpack-*'))

@pytest.mark.parametrize('name,msg', [('ham10000', 'ham10000 has no direct download'),
                                      ('derm7pt', 'derm7pt has no direct download'),
                                      ('pad-ufes', "unknown dataset 'pad-ufes'")])
def test_manual_and_unknown(name, msg, tmp_path, capsys):
    code, o, e = in_process(capsys, 'download', name, '--dest', tmp_path/'x')
    assert code == 2 and msg in e and len(e.strip().splitlines()) == 1

def test_isic2019_three_files_from_real_copies(real_data, tmp_path, capsys):
    "ISIC 2019's three files (the image zip + two CSVs), built from the real files in ../shared/data, load after download."
    import shutil
    from jif_fastai.data import load_isic2019
    from jif_fastai.datasets import _zip_dir
    src, www = real_data/'isic-2019', tmp_path/'www'
    www.mkdir()
    _zip_dir(src/'ISIC_2019_Training_Input', www/'ISIC_2019_Training_Input.zip', 'ISIC_2019_Training_Input')
    for f in ('ISIC_2019_Training_GroundTruth.csv', 'ISIC_2019_Training_Metadata.csv'): shutil.copy(src/f, www/f)
    with serve_folder(www) as (url, log), \
         registry_entry('isic-2019', files={f.name: url + f.name for f in sorted(www.iterdir())}):
        code, o, e = in_process(capsys, 'download', 'isic-2019', '--dest', tmp_path/'isic')
    assert code == 0, e
    assert 'CC BY-NC 4.0 (non-commercial use only)' in o and len(log) == 3
    with pytest.warns(UserWarning): df, spec = load_isic2019(tmp_path/'isic')      # a partial copy: rows without images dropped
    assert len(df) == len(list((src/'ISIC_2019_Training_Input').glob('*.jpg')))

def test_download_help_complete(capsys):
    from jif_fastai.datasets import download
    code, o, e = in_process(capsys, 'download', '--help')
    assert code == 0 and o.startswith('usage: jif-fastai download')
    for p in cli.anno_parser(download.__wrapped__)._actions:
        if p.help != '==SUPPRESS==': assert p.help, f'download {p.option_strings}: no help'
