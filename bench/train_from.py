"""Issue 20 §1: seconds per epoch of JIF-MMFA on tf_efficientnet_lite0 at 192 px when the backbone is cached up to
stage k and stages k... train (`fit_frozen(train_from=k)`), against the whole backbone frozen and cached, and full
fine-tuning on images; with the cache size on disk, measured per image and extrapolated to HAM10000's 10,015 images.

Each mode: one untimed warm-up epoch, then `EPOCHS` timed epochs (training + validation, `time_epochs`); encoding the
cache is outside the clock and reported apart. The sample is generated (`bench_sample`: timing does not depend on
what the pixels show), fold 0 of a grouped 5-fold split; random init (weights do not change the cost).

Usage (from the repository root): python bench/train_from.py [N_IMAGES=256] [THREADS=2] [EPOCHS=1] [DEVICE=cpu] [MODES=all]
MODES: comma-separated numbers of the modes below (0-4) to measure now; the others are kept from an earlier run of the
same configuration in bench/<device>/train_from_lite0_192.json (so a slow mode can be measured on its own).
Writes bench/<device>/train_from_lite0_192.{json,md}."""
import json, sys, tempfile, time, warnings; warnings.simplefilter('ignore')
from pathlib import Path
import torch
from fastai.torch_core import set_seed
from jif_fastai.bench import bench_sample, bench_split, bench_env
from jif_fastai.data import load_pad_ufes20
from jif_fastai.dataloaders import ImageMetaDataLoaders
from jif_fastai.learner import jif_learner
from jif_fastai.frozen import frozen_features, time_epochs, backbone_stages

N, THREADS, EPOCHS = (int(a) for a in (sys.argv[1:4] + ['256', '2', '1'][len(sys.argv[1:4]):]))
DEVICE = sys.argv[4] if len(sys.argv) > 4 else 'cpu'
ONLY = [int(i) for i in sys.argv[5].split(',')] if len(sys.argv) > 5 else None
torch.set_num_threads(THREADS)
HAM, BACKBONE, SIZE, BS = 10015, 'tf_efficientnet_lite0', 192, 64
MODES = {  # label -> (time_epochs mode, train_from, channels-last for the 'full' modes); fit_frozen always trains its stages channels-last
    'frozen, cached (train_from=None)': ('cached', None, False), 'last stage trains, cached (train_from=-1)': ('cached', -1, True),
    'last two stages train, cached (train_from=-2)': ('cached', -2, True), 'full fine-tuning on images (unfreeze + fit)': ('full', None, False),
    'full fine-tuning on images, channels-last (to_channelslast(use_amp=False))': ('full', None, True)}

df, spec = load_pad_ufes20(bench_sample(N, full_size=False, size=224))
tr, va = bench_split(df, 5, 0)
dls = ImageMetaDataLoaders.from_df(df, spec, valid_idx=va, train_idx=tr, size=SIZE, bs=BS, seed=0, device=DEVICE)
cfg = dict(backbone=BACKBONE, size=SIZE, bs=BS, n_images=len(df), n_train=len(tr), epochs_timed=EPOCHS, threads=THREADS)
d = Path('bench')/DEVICE.split(':')[0]; d.mkdir(exist_ok=True)
old = json.loads((d/'train_from_lite0_192.json').read_text()) if (d/'train_from_lite0_192.json').is_file() else {}
res = old.get('results', {}) if ONLY is not None and old.get('config', {}).get('run') == cfg else {}
envs = old.get('envs', {}) if res else {}
tmp = Path(tempfile.mkdtemp(prefix='train_from_'))
for i, (label, (mode, k, last)) in enumerate(MODES.items()):
    if ONLY is not None and i not in ONLY: continue
    envs[label] = bench_env(DEVICE)   # the load average when each mode started
    set_seed(0); learn = jif_learner(dls, BACKBONE, 'mmfa', 'jif', opt='sgd', pretrained=False)
    if mode == 'full' and last: learn.to_channelslast(use_amp=False)   # fastai's channels-last, for a like-for-like comparison
    cdir, feats, enc_s = tmp/f'cache_{k}', None, None
    if mode == 'cached':
        t = time.perf_counter(); feats = frozen_features(learn, 1, cdir, k); enc_s = time.perf_counter() - t
    s = time_epochs(learn, mode, EPOCHS, 3e-3, cdir, feats, train_from=k)
    disk = sum(f.stat().st_size for f in cdir.glob('*.npy')) if mode == 'cached' else 0
    res[label] = dict(epoch_s=s, encode_s=enc_s, cache_bytes_per_image=disk / len(df), cache_gb_ham10000=disk / len(df) * HAM / 1e9,
                      cached=None if feats is None else list(feats.shape[2:]), dtype=None if feats is None else str(feats.dtype))
    print(label, res[label], flush=True)
    (d/'train_from_lite0_192.json').write_text(json.dumps(dict(config=dict(run=cfg), envs=envs, results=res), indent=1, default=str))  # kept if a later mode is cut off
full, full_cl = (res.get(k, {}).get('epoch_s') for k in list(MODES)[3:5])
for v in res.values():
    v['x_faster_than_full'] = full / v['epoch_s'] if full else float('nan')
    v['x_faster_than_full_channels_last'] = full_cl / v['epoch_s'] if full_cl else float('nan')
out = dict(config=dict(run=cfg, n_stages=len(backbone_stages(learn.model.img_encoder))), envs=envs, results=res)
rows = ['| mode | s/epoch | x faster than full | x faster than full channels-last | s/epoch for 10,015 images (extrapolated) | cached map (C,h,w), dtype | cache / image (KB) | cache for 10,015 images (GB) | encode once (s) |',
        '|---|---|---|---|---|---|---|---|---|']
for label, v in res.items():
    enc = '-' if v['encode_s'] is None else f"{v['encode_s']:.1f}"
    rows.append(f"| {label} | {v['epoch_s']:.2f} | {v['x_faster_than_full']:.1f} | {v['x_faster_than_full_channels_last']:.1f} | {v['epoch_s'] * HAM / len(df):.0f} | {v['cached'] or '-'} {v['dtype'] or ''} | "
                f"{v['cache_bytes_per_image'] / 1e3:.1f} | {v['cache_gb_ham10000']:.3f} | {enc} |")
md = (f"{BACKBONE} {SIZE}px bs {BS}, {len(df)} generated images ({len(tr)} training rows), fold 0; {EPOCHS} timed epoch(s) after one warm-up; "
      f"{bench_env(DEVICE)['device']}, {THREADS} threads; load average (1, 5, 15 min) when each mode started: "
      + '; '.join(f"{m.split(' (')[0]}: {e['loadavg']}" for m, e in envs.items()) + '\n\n' + '\n'.join(rows) + '\n\n'
      f"The extrapolated column scales the measured epoch (training + validation over {len(df)} rows) by {HAM}/{len(df)}: "
      f"a linear estimate, not a measurement.\n\n"
      f"Command: python bench/train_from.py {N} {THREADS} {EPOCHS} {DEVICE}\n")
(d/'train_from_lite0_192.json').write_text(json.dumps(out, indent=1, default=str)); (d/'train_from_lite0_192.md').write_text(md)
print(md)
