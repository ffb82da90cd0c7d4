"""`jif-fastai train --decision adaptive --calibrate --meta-dropout` on the sample, then `predict` for a patient with no
metadata at all: a label, a proper distribution, the branch weights it relied on, and the saved temperature applied
(or not, with --no-calibrate: same label)."""
import json
import numpy as np, pytest
from jif_fastai.calibration import temper
from jif_fastai.datasets import load_dataset
from conftest import in_process

TINY = ['--folds', '2', '--epochs', '1', '--size', '32', '--no-pictures']

@pytest.fixture(scope='module')
def adaptive_run(tmp_path_factory):
    import jif_fastai.cli as cli
    out = tmp_path_factory.mktemp('adaptive')/'run'
    code = cli.main(['train', *TINY, '--decision', 'adaptive', '--calibrate', '--meta-dropout', '0.2', '--out', str(out)])
    assert code == 0
    return out

def test_train_adaptive_saves_decision(adaptive_run):
    cfg = json.loads((adaptive_run/'models'/'fold_1'/'config.json').read_text())
    assert cfg['decision']['name'] == 'adaptive' and cfg['temperature'] > 0
    run = json.loads((adaptive_run/'run.json').read_text())['config']
    assert (run['decision'], run['calibrate'], run['meta_dropout']) == ('adaptive', True, 0.2)
    assert 1.0 in run['missing_fracs']                                   # the gate saw empty records
    assert (adaptive_run/'decisions.md').is_file() and (adaptive_run/'reliability.png').stat().st_size > 1000

def test_predict_without_metadata(adaptive_run, capsys):
    df, spec = load_dataset('pad-ufes-20')
    model, image = adaptive_run/'models'/'fold_0', df.image.iloc[3]
    code, o, e = in_process(capsys, 'predict', '--model', model, '--image', image, '--json-out')   # no --meta: nothing recorded
    assert code == 0, e
    r = json.loads(o)
    assert r['label'] in spec.classes and abs(sum(r['probs'].values()) - 1) < 1e-4
    assert r['decision'] == 'adaptive' and set(r['weights']) == {'joint', 'image', 'meta'} and abs(sum(r['weights'].values()) - 1) < 1e-5
    assert r['temperature'] == json.loads((model/'config.json').read_text())['temperature']
    code, o2, e = in_process(capsys, 'predict', '--model', model, '--image', image, '--json-out', '--no-calibrate')
    r2 = json.loads(o2)
    assert code == 0 and r2['label'] == r['label'] and r2['temperature'] is None and r2['weights'] == r['weights']
    # the saved temperature was applied to the fused prediction, and --no-calibrate did not apply it
    cal, raw = np.array(list(r['probs'].values())), np.array([list(r2['probs'].values())])
    assert np.abs(temper(raw, r['temperature'])[0] - cal).max() < 1e-3 and np.abs(raw[0] - cal).max() > 1e-3
    code, o3, e = in_process(capsys, 'predict', '--model', model, '--image', image)
    assert code == 0 and 'decision adaptive: relied on ' in o3 and 'temperature' in o3, o3

@pytest.mark.parametrize('args, msg', [
    (['--meta-dropout', '1.5'], '--meta-dropout 1.5: must be a number in [0, 1)'),
    (['--decision', 'adaptive', '--decision-weights', '1,1,1'], "--decision-weights apply to decision 'fixed', not 'adaptive'"),
    (['--decision', 'vote'], "argument --decision: invalid choice: 'vote'"),
])
def test_bad_decision_flags(args, msg, capsys, tmp_path):
    code, o, e = in_process(capsys, 'train', *TINY, *args, '--out', tmp_path/'r')
    assert code == 2 and msg in e and len(e.strip().splitlines()) == 1, e
