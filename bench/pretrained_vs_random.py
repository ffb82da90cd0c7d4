"Issue 11 §3: what the pretrained start changes vs random init (same folds, same budget): JIF-MMFA on a frozen lite0, 1,757-image class-stratified HAM10000 slice. Usage: python bench/pretrained_vs_random.py [THREADS] [pretrained|random] (run from the repository root, ../shared beside it)."
import json, sys, time, warnings; warnings.simplefilter('ignore')
import torch
from pathlib import Path
from jif_fastai.datasets import load_dataset
from jif_fastai.cv import run_cv
from jif_fastai.tables import fold_rows, mean_std
from jif_fastai.results import RESULTS_SETTINGS as S, canary_slice
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
df, spec = load_dataset('ham10000', '../shared/data/ham10000')
sub = canary_slice(df, spec, 300)   # first 300 images of each class in file order (fewer for df, vasc)
print(len(sub), sub.label.value_counts().to_dict(), flush=True)
kw = dict(folds=5, epochs=S['epochs'], bs=S['bs'], lr=S['lr'], schedule=S['schedule'], opt=S['opt'], wd=S['wd'], size=S['size'],
          seed=0, lam=S['lam'], frozen=True, views=1)
out = {}
only = sys.argv[2] if len(sys.argv) > 2 else None
for name, extra in (('pretrained (lite0 ImageNet file)', dict(weights_file=Path('../shared/weights/tf_efficientnet_lite0_timm.safetensors'))),
                    ('random init', dict(pretrained=False))):
    if only and not name.startswith(only): continue
    t = time.time()
    r = fold_rows(run_cv((sub, spec), backbone='tf_efficientnet_lite0', out_dir=f'runs/pretrained_vs_random/{name.split()[0]}', progress=False, pictures=False, **kw, **extra))
    out[name] = dict(**mean_std(r, ['bal_acc', 'accuracy', 'auc', 'bal_acc_image', 'bal_acc_meta']), seconds=round(time.time() - t))
    print(name, out[name], flush=True)
Path(f'runs/pretrained_vs_random/summary_{only}.json').write_text(json.dumps(dict(rows=len(sub), results=out), indent=1))
