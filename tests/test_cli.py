"""`jif-fastai`: train end to end on the sample through the installed console script, predict with a saved fold model,
write the sample, and one-line errors with exit status 2 for bad arguments."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
import jif_fastai.cli as cli
from jif_fastai.datasets import load_dataset
from conftest import in_process

EXE = shutil.which('jif-fastai', path=str(Path(sys.executable).parent)) or 'jif-fastai'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
TINY = ['--folds', '2', '--epochs', '1', '--size', '32', '--no-pictures']

def jif(*args, timeout=600):
    "Run the console script; (exit status, stdout, stderr)."
    p = subprocess.run([EXE, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "`jif-fastai train` on the sample, through the console script."
    out = tmp_path_factory.mktemp('cli')/'run'
    code, o, e = jif('train', *TINY, '--out', out)
    assert code == 0, e[-3000:]
    return out, o

def test_train_end_to_end(trained):
    out, o = trained
    assert 'sample settings (no --root: the embedded sample) with --folds, --epochs, --size from the command line: resnet10t at 32 px' in o
    assert re.search(r'\|\s*bal_acc\s*\|', o) and 'mean ± std' in o and 'metadata removed at test time' in o
    assert 'fold 1 epoch 1/1' in o                                # per-epoch progress lines
    assert (out/'results.csv').is_file() and (out/'models'/'fold_1'/'model.safetensors').is_file()

def test_train_rerun_resumes_and_refuses_changes(trained, capsys):
    out, _ = trained
    code, o, e = in_process(capsys, 'train', *TINY, '--out', out)
    assert code == 0 and 'fold 0 epoch' not in o and re.search(r'\|\s*bal_acc\s*\|', o)    # nothing retrained
    code, o, e = in_process(capsys, 'train', *TINY[:2], '--epochs', '2', *TINY[4:], '--out', out)
    assert code == 2 and e.startswith('jif-fastai train: error:') and 'epochs: 1 there, 2 now' in e
    assert len(e.strip().splitlines()) == 1 and 'Traceback' not in e

def test_predict_saved_fold_model(trained, tmp_path, capsys):
    out, _ = trained
    code, o, e = in_process(capsys, 'predict', '--model', out/'models'/'fold_0')
    assert code == 2 and 'looks at images: give the lesion' in e and len(e.strip().splitlines()) == 1
    df, spec = load_dataset('pad-ufes-20')
    row = df.iloc[3]
    meta = {k: v for k, v in row[spec.meta_names].items() if v == v}       # recorded values only
    code, o, e = jif('predict', '--model', out/'models'/'fold_0', '--image', row.image, '--meta', json.dumps(meta), '--json-out')
    assert code == 0, e
    r = json.loads(o)
    assert r['label'] in spec.classes and abs(sum(r['probs'].values()) - 1) < 1e-4
    assert list(r['per_branch']) == ['joint', 'image', 'meta']
    (tmp_path/'m.csv').write_text('age,region\n61,FACE\n')
    code, o, e = in_process(capsys, 'predict', '--model', out/'models'/'fold_0', '--image', row.image, '--meta', tmp_path/'m.csv')
    assert code == 0 and o.startswith('label: ') and 'fused' in o, e

BAD = [(['train', '--backbone', 'resnet51'], "Unknown timm backbone 'resnet51'"),
       (['train', '--fusion', 'mmfa,mfa'], "unknown fusion 'mfa'"),
       (['train', '--structure', 'jjf'], "unknown structure 'jjf'"),
       (['train', '--split', 'official'], '--split official needs --dataset derm7pt'),
       (['train', '--dataset', 'isic-2019', '--split', 'official'], '--split official needs --dataset derm7pt'),
       (['train', '--dataset', 'derm7pt'], '--dataset derm7pt needs --root'),
       (['train', '--dataset', 'csv'], '--dataset csv needs --csv, --image-col, --label-col'),
       (['train', '--classes', 'MEL'], 'one class; a classifier needs at least two'),
       (['train', '--cat', 'sex'], '--cat apply to --dataset csv only'),
       (['train', '--root', '/nonexistent/pad'], 'no such folder'),
       (['train', '--out', '/proc/jif-run'], 'cannot write there'),
       (['train', '--epochs', 'five'], "argument --epochs: invalid int value: 'five'"),
       (['train', '--dataset', 'ham10000'], '--dataset ham10000 needs --root'),
       (['train', '--dataset', 'ham'], 'argument --dataset: invalid choice'),
       (['train', '--bogus'], 'unrecognized arguments: --bogus'),
       (['predict', '--image', 'x.png'], 'the following arguments are required: --model'),
       (['predict', '--model', '/nonexistent', '--image', 'x.png'], 'not found (expected a folder written by export_jif)'),
       (['train', '--views', '9', '--frozen'], '--views 9: must be an integer from 1 to 8'),
       (['train', '--views', '2'], '--views 2: several views need a cached backbone (frozen or train_from)'),
       (['frobnicate'], "unknown command 'frobnicate'")]

@pytest.mark.parametrize('argv,msg', BAD, ids=[' '.join(a) for a, _ in BAD])
def test_bad_arguments_one_line_exit_2(capsys, monkeypatch, tmp_path, argv, msg):
    monkeypatch.chdir(tmp_path)
    code, o, e = in_process(capsys, *argv)
    assert code == 2, (o, e)
    assert len(e.strip().splitlines()) == 1 and msg in e and 'Traceback' not in e, e
    assert e.startswith(f"jif-fastai {argv[0]}: error: " if argv[0] in cli.COMMANDS else 'jif-fastai: error: ')
    assert not (tmp_path/'runs').exists()                                     # refused before creating anything

def test_bad_arguments_through_the_script(capsys):
    code, o, e = jif('train', '--fusion', 'mfa')
    assert code == 2 and e.strip().splitlines() == [e.strip()] and e.startswith("jif-fastai train: error: unknown fusion 'mfa'")
    code, o, e = in_process(capsys)
    assert code == 2 and 'commands:' in e

def test_help_complete(capsys):
    for cmd in ('train', 'predict', 'sample'):
        code, o, e = in_process(capsys, cmd, '--help')
        assert code == 0 and o.startswith(f'usage: jif-fastai {cmd}')
        for p in cli.anno_parser(getattr(cli, cmd).__wrapped__)._actions:
            if p.help != '==SUPPRESS==': assert p.help, f'{cmd} {p.option_strings}: no help'
    code, o, e = in_process(capsys, '--help')
    assert code == 0 and all(c in o for c in cli.COMMANDS)

def test_sample_command(capsys, tmp_path):
    code, o, e = in_process(capsys, 'sample', '--out', tmp_path/'s', '--n-images', 120, '--size', 48)
    assert code == 0 and (tmp_path/'s'/'metadata.csv').is_file() and len(list((tmp_path/'s').rglob('*.png'))) == 120
    code, o, e = in_process(capsys, 'sample', '--out', tmp_path/'s')
    assert code == 2 and 'exists' in e and len(e.strip().splitlines()) == 1

def test_every_registered_command_answers_help(capsys):
    "Each command of the registry is a function of the package (no optional module behind it): it imports and `--help` lists its options."
    for k in cli.COMMANDS:
        code, o, e = in_process(capsys, k, '--help')
        assert code == 0 and o.startswith(f'usage: jif-fastai {k}'), (k, e)

def test_grid_from_comma_lists(capsys, tmp_path):
    code, o, e = in_process(capsys, 'train', *TINY, '--threads', 1, '--structure', 'jif,image', '--out', tmp_path/'g')
    assert code == 0, e
    assert re.search(r'\|\s*backbone\s*\|\s*fusion\s*\|\s*structure\s*\|', o) and (tmp_path/'g'/'resnet10t-none-image'/'results.csv').is_file()

def test_fusions_of_an_image_only_run_collapse_to_one_run(capsys, monkeypatch, tmp_path):
    "`--structure image` ignores the fusion: several fusions are one run (not a grid), named by the fusion it uses."
    monkeypatch.chdir(tmp_path)
    code, o, e = in_process(capsys, 'train', *TINY, '--threads', 1, '--fusion', 'mmfa,concat', '--structure', 'image')
    assert code == 0, e
    assert [p.name for p in (tmp_path/'runs').iterdir()] == ['pad-ufes-20-image-none-resnet10t'] and 'grid' not in o

def test_pretrained_weights_unavailable_one_line(tmp_path):
    "Offline with --pretrained: one line saying how to train without downloading, exit 2, no traceback."
    env = {**ENV, 'HF_HUB_OFFLINE': '1', 'HF_HOME': str(tmp_path/'hf')}
    p = subprocess.run([EXE, 'train', '--pretrained', '--folds', '2', '--epochs', '1', '--size', '32', '--no-pictures',
                        '--out', str(tmp_path/'run')], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]                     # (earlier lines: data warnings)
    assert last.startswith('jif-fastai train: error: Could not load pretrained weights') and '--no-pretrained' in last, p.stderr
    assert 'Traceback' not in p.stderr

def test_metadata_only_run_needs_no_images(tmp_path, real_data):
    "--structure meta on PAD-UFES-20 with 45 of 2,298 images: trains on every row and reports the logistic-regression reference."
    out = tmp_path/'meta'
    code, o, e = jif('train', '--dataset', 'pad-ufes-20', '--root', real_data/'pad-ufes-20', '--structure', 'meta', '--epochs', '1',
                     '--no-pictures', '--out', out)
    assert code == 0, e[-3000:]
    assert json.loads((out/'run.json').read_text())['config']['n_images'] == 2298
    recs = [json.loads(f.read_text()) for f in sorted((out/'folds').glob('fold_*.json'))]
    assert len(recs) == 5 and sum(r['n_test'] for r in recs) == 2298          # every row scored once
    assert 'meta-none on pad-ufes-20 (2298 rows)' in o and 'no image file' not in e
    assert 'logistic regression (class-balanced)' in o and (out/'reference.csv').is_file()
    ref = pd.read_csv(out/'reference.csv')
    assert list(ref.fold) == ['0', '1', '2', '3', '4', 'mean', 'std'] and 0.3 < ref.bal_acc.iloc[5] <= 1
    assert (out/'models'/'fold_0'/'config.json').is_file()
    assert json.loads((out/'models'/'fold_0'/'config.json').read_text())['cache_size'] == 0      # no image array kept
    code, o, e = jif('predict', '--model', out/'models'/'fold_0', '--meta', '{"age": 60}', '--json-out')
    assert code == 0 and json.loads(o)['label'] in ['ACK', 'BCC', 'MEL', 'NEV', 'SCC', 'SEK'], e   # no --image: the model reads none

def test_train_prints_the_backbones_it_trains(capsys, monkeypatch, tmp_path):
    "The settings line names the `--backbone` given (not the preset's) and lists it among the flags that changed the preset."
    def stop(*a, **k): raise cli.UsageError('stopped before training')
    monkeypatch.setattr(cli, 'run_cv', stop); monkeypatch.setattr(cli, 'run_grid', stop)
    code, o, e = in_process(capsys, 'train', '--backbone', 'resnet18', '--epochs', '2', '--out', tmp_path/'a')
    assert code == 2 and 'with --backbone, --epochs from the command line: resnet18 at 64 px' in o, o
    code, o, e = in_process(capsys, 'train', '--backbone', 'resnet18,resnet34', '--out', tmp_path/'b')
    assert code == 2 and 'resnet18, resnet34 at 64 px' in o, o
