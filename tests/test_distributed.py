"Data-parallel training with fastai + accelerate: 2 CPU processes (gloo) for a couple of batches."
import json, os, subprocess, sys
import pytest
from jif_fastai.inference import load_jif
from jif_fastai.data import load_pad_ufes20

pytest.importorskip('accelerate')

ACCELERATE = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
              '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no']
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2']

@pytest.mark.parametrize('launcher,extra', [(ACCELERATE, []), (TORCHRUN, ['--stock'])], ids=['accelerate', 'torchrun-stock'])
def test_two_cpu_processes(tmp_path, launcher, extra):
    out = tmp_path/'run'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'JIF_FASTAI_CACHE': str(tmp_path/'cache'), 'PYTHONWARNINGS': 'ignore'}
    cmd = launcher + ['-m', 'jif_fastai.distributed', '--cpu', '--out', str(out), '--n-images', '40', *extra]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    ranks = [json.loads((out/f'rank{r}.json').read_text()) for r in (0, 1)]
    assert [r['rank'] for r in ranks] == [0, 1]
    for r in ranks: assert r['world_size'] == 2 and r['backend'] == 'gloo' and r['train_batches'] >= 1
    # each process saw its half of the epoch's batches (fastai's DistributedDL pads to a multiple of 2)
    n_batches = r['train_items'] // r['bs']
    assert ranks[0]['train_batches'] == ranks[1]['train_batches'] == -(-n_batches // 2)
    assert ranks[0]['params_sha256'] == ranks[1]['params_sha256']  # DDP kept the replicas in sync
    assert ranks[0]['metrics'] == ranks[1]['metrics']              # metrics gathered over both halves
    cfg = json.loads((out/'model'/'config.json').read_text())
    assert cfg['ddp'] == {'world_size': 2, 'bs_per_process': 8}
    pred = load_jif(out/'model')
    df, _ = load_pad_ufes20(next((tmp_path/'cache').glob('sample-*')))
    row = df.iloc[0]
    label, probs, _ = pred.predict(row.image, {k: row[k] for k in pred.preproc.cat_names + pred.preproc.cont_names})
    assert label in pred.classes and abs(sum(probs.values()) - 1) < 1e-4
