"""Host-side (CPU) costs per training batch that decide whether a GPU is kept busy, measured with negligible arithmetic
(1-element parameters, 8 px images), so they hold on a CPU-only machine. Usage: python bench/host_costs.py [out.json]"""
import sys, time, statistics, json, numpy as np, torch, timm
from functools import partial
from fastai.optimizer import SGD
from fastai.torch_core import TensorImage
from jif_fastai.bench import bench_sample, bench_loader
from jif_fastai.callbacks import ForeachSGD
from jif_fastai.data import load_pad_ufes20
from jif_fastai.dataloaders import ImageCache, ImageMetaDataLoaders
torch.set_num_threads(1)
def best(f, n=20, reps=5):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n): f()
        ts.append((time.perf_counter() - t) / n * 1000)
    return min(ts)
out = {}
# (1) optimizer step + zero_grad on resnet50's parameter list, with 1-element tensors (host cost only)
shapes = [p.shape for p in timm.create_model('resnet50').parameters()]
ps = [torch.zeros(1, requires_grad=True) for _ in shapes]; g = torch.ones(1)
def set_grads():
    for p in ps: p.grad = g.clone()
base = best(set_grads)
for name, opt_func in (('fastai SGD', SGD), ('ForeachSGD', ForeachSGD), ('torch.optim.SGD (foreach)', None)):
    opt = opt_func(ps, lr=0.1, mom=0.9, wd=1e-4) if opt_func else torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=True)
    def step(): set_grads(); opt.step(); opt.zero_grad()
    out[f'optimizer step + zero_grad, resnet50 ({len(shapes)} tensors): {name} (ms)'] = best(step) - base
# (2) forward of resnet50 on a tiny input: plain Tensor vs fastai TensorImage (per-op subclass dispatch), interleaved
m = timm.create_model('resnet50', num_classes=6).eval(); x = torch.randn(1, 3, 8, 8)
ts = {'Tensor': [], 'TensorImage': []}
with torch.no_grad():
    for _ in range(15):
        for name, inp in (('Tensor', x), ('TensorImage', TensorImage(x))): ts[name].append(best(lambda: m(inp), n=5, reps=1))
for name, v in ts.items(): out[f'resnet50 forward, 8 px input: {name} (ms)'] = min(v)
# (3) DataLoader host cost per batch of 64, images 8 px (arithmetic negligible), augmentation on
root = bench_sample(300, full_size=False, size=64, n_workers=1)
df, spec = load_pad_ufes20(root)
imgs = ImageCache(9).load(df.image.tolist())
mk = lambda on_device: ImageMetaDataLoaders.from_df(df, spec, np.arange(0, 300, 5), size=8, cache_size=9, bs=64, images=imgs,
                                                    device='cpu', on_device=on_device)
dls = mk(False)
out['loader ms/batch of 64, stock (items from RAM cache)'] = statistics.median(bench_loader(dls.train, 12, 2)['ms_batch'] for _ in range(3))
dls = mk(True)
out['loader ms/batch of 64, DeviceBatchDL'] = statistics.median(bench_loader(dls.train, 12, 2, nosync=True)['ms_batch'] for _ in range(3))
dls = mk(False)
it = dls.train
out['per-item fetch (do_item), ms per 64 items'] = best(lambda: [it.do_item(i) for i in range(64)], n=3)
out = {k: round(v, 2) for k, v in out.items()}
print(json.dumps(out, indent=1))
if len(sys.argv) > 1: open(sys.argv[1], 'w').write(json.dumps(out, indent=1) + '\n')
