#!/usr/bin/env bash
# One-shot GPU benchmark of jif_fastai (issue 6): the paper's configuration (224 px, batch 64, bf16) for the five
# backbones of the paper, on 2,298 generated ~1 MP PNGs in PAD-UFES-20 layout, within a 10-minute budget.
#
# Run it from the repository root on the GPU machine, e.g. with the device tool:
#     run(command="bash bench/run_gpu.sh", carry=[".whl"], timeout_s=600)
# The GPU image has torch, timm, pandas, scikit-learn, safetensors and accelerate but not fastai. Download the
# missing wheels once, on a machine with network access, into .whl/ (git-ignored; `carry` takes it along):
#     pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#         fastai fastcore fasttransform fastdownload plum-dispatch beartype fastprogress==1.0.3
#
# Writes into $OUT (the device tool's output folder; else /tmp/jif_fastai_bench), at most 6 files:
#     bench_gpu.json       every run's full result (run_bench's dict), in run order
#     bench_gpu.txt        every run's printed table
#     summary.md           one Markdown row per run (ratios to the limit, memory ratio, protocol estimate)
#     profile_resnet50.txt torch.profiler table of the fixed fastai pipeline (top ops by self CPU time)
#     run.log              everything printed
# Order: data -> resnet50 (all sections, per-fix ablation, profile) -> the four other backbones (no loader
# section: it does not depend on the backbone) -> resnet50 with torch.compile, with what time is left.
# Each run has a hard timeout and a softer --time-budget (remaining sections skipped, JSON still written).
#
# BENCH_DRY=1 runs the same script on the CPU with the tiny configuration (no wheel install), to check the script.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/jif_fastai_bench}; mkdir -p "$OUT"
PY=${PY:-python3}
BUDGET=${BUDGET:-540}   # seconds for the whole script
DRY=${BENCH_DRY:-0}
START=$(date +%s)
W=$(mktemp -d)
exec > >(tee -a "$OUT/run.log") 2>&1
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

if [ "$DRY" = 0 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/ (see the header of this script)"; exit 2; }
  $PY -m pip install -q --no-index --no-deps .whl/*.whl || { echo "wheel install failed"; exit 2; }
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export JIF_FASTAI_CACHE=${JIF_FASTAI_CACHE:-/tmp/jif_fastai_cache}
export PYTHONWARNINGS=ignore
$PY -c "import torch, timm, fastai, jif_fastai.bench as b; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'timm', timm.__version__, 'fastai', fastai.__version__)" || exit 2

if [ "$DRY" = 0 ]; then
  N=2298; GEN="full_size=True"
  COMMON=(--size 224 --bs 64 --bf16 --n-batches 30 --warmup 10 --n-images $N --cache-dir "$JIF_FASTAI_CACHE/presized")
  T_FIRST=140; T_EACH=65
else
  N=30; GEN="full_size=False, size=64"
  COMMON=(--tiny --device cpu --threads 1 --cache-dir "$JIF_FASTAI_CACHE/presized")
  T_FIRST=120; T_EACH=60
fi

echo "== data: $N images ($GEN), all cores"
$PY -c "
import time; t = time.time()
from jif_fastai.bench import bench_sample
r = bench_sample($N, $GEN)
print('sample at', r, f'({time.time()-t:.0f} s)')" || exit 3

i=0
run() {  # run NAME SECONDS ARGS...: one benchmark process with a hard timeout
  local name=$1 t=$2; shift 2; local l; l=$(left)
  if [ "$l" -lt 40 ]; then echo "== $name: skipped (budget: ${l}s left)"; return; fi
  [ "$t" -gt "$l" ] && t=$l
  i=$((i+1)); echo "== $name (limit ${t}s)"
  timeout -k 10 "$t" $PY -m jif_fastai.bench "${COMMON[@]}" --time-budget $((t*2/3)) --out "$W/$(printf %02d $i)_$name.json" "$@" \
    || echo "== $name: exit code $? (124 = timed out)"
}
run resnet50 $T_FIRST --backbone resnet50 --ablation --profile "$OUT/profile_resnet50.txt"
for b in densenet121 mobilenetv2_100 efficientnet_b3 legacy_xception; do
  run $b $T_EACH --backbone $b --sections limit,model,pipeline,epoch,inference
done
run resnet50_compile $(( $(left) - 15 )) --backbone resnet50 --sections limit,model,pipeline --compile

$PY - "$W" "$OUT" <<'EOF'
import glob, json, sys
from pathlib import Path
from jif_fastai.bench import format_table, markdown_table
w, out = sys.argv[1:]
rs = [json.loads(Path(f).read_text()) for f in sorted(glob.glob(f'{w}/*.json'))]
for r, f in zip(rs, sorted(glob.glob(f'{w}/*.json'))): r['run'] = Path(f).stem
Path(out, 'bench_gpu.json').write_text(json.dumps(rs, indent=1, default=str))
Path(out, 'bench_gpu.txt').write_text('\n\n'.join(format_table(r) for r in rs) + '\n')
md = markdown_table(rs)
Path(out, 'summary.md').write_text(md + '\n')
print(md)
EOF
echo "== done in $(( $(date +%s) - START )) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
