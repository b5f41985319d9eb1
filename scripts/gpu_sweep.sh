#!/bin/bash
# One GPU call, as run on an H200 (docs/demo-model.md): benchmarks/bench_batch.py while the pools
# render, then 7 demo trainings sharing the GPU (MIN minutes each, the cosine schedule over that
# time), each scored on 300 val scenes; the trained models and logs are tarred into $OUT.
#   OUT=/tmp/out bash scripts/gpu_sweep.sh      (DEV=cpu POOL_N=300 MIN=0.05 SC=3 BENCH=0: a dry run)
# A .whl folder, if present, is pip-installed first (a transformers matching this machine's).
export PYTHONUNBUFFERED=1
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 ))s] $*" >> $OUT/timeline.txt; }
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/benchmarks
export SWEEP=${SWEEP:-/tmp/sweep}; mkdir -p $SWEEP
DEV=${DEV:-cuda}; POOL_N=${POOL_N:-24000}; MIN=${MIN:-4.3}; SC=${SC:-300}; BENCH=${BENCH:-1}
el start
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import transformers,torch;print(transformers.__version__, torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())") > $OUT/gpu.txt 2>&1
if [ "$BENCH" = 1 ]; then (timeout 140 python3 benchmarks/bench_batch.py --device $DEV --full-pairs 64 > $OUT/bench.log 2>&1; echo "rc $?" >> $OUT/bench.log) & BPID=$!; fi
POOL_N=$POOL_N POOL_WORKERS=12 python3 scripts/train_sweep.py render /tmp/pool 64,96,128 > $SWEEP/render.log 2>&1; el rendered
[ -n "$BPID" ] && wait $BPID; el bench done
launch() { # name, json, methods
  SWEEP_DEVICE=$DEV python3 scripts/train_sweep.py train $1 "$2" /tmp/pool > $SWEEP/$1.out 2>&1; el trained $1
  timeout 110 python3 -m groundreport eval --model $SWEEP/$1 --split val --scenes $SC --methods $3 --report $SWEEP/ev-$1 --device $DEV --offline --no-progress > $SWEEP/$1.val 2>&1; el evaluated $1 rc $?
}
X=${XTRA:-}
# name family image-size seed: the FLAVAs with MMM, each scored by its per-word readouts too
# RUNS overrides the table, e.g. RUNS="f128a flava 128 0;f128b flava 128 1"
RUNS=${RUNS:-"f64s0 flava 64 0;f96s0 flava 96 0;f96s1 flava 96 1;f128s0 flava 128 0;c64s0 clip 64 0;c96s0 clip 96 0;c128s0 clip 128 0"}
IFS=';' read -ra TABLE <<< "$RUNS"
for run in "${TABLE[@]}"; do
  read -r name family size seed <<< "$run"
  if [ "$family" = flava ]; then mmm=',"mmm_loss_weight":1.0'; methods=relevancy,mm-masked,gradcam
  else mmm=''; methods=relevancy,gradcam; fi
  launch $name "{\"family\":\"$family\",\"image_size\":$size$mmm,\"minutes\":$MIN,\"seed\":$seed,\"pool_size\":$POOL_N$X}" $methods &
  runs="$runs $!"
done
sleep 5; (timeout 100 python3 -m groundreport build --demo --device $DEV --report /tmp/cb-report --site /tmp/cb-site --no-progress > $OUT/cuda_build.log 2>&1; echo "rc $?" >> $OUT/cuda_build.log) &
wait $runs  # every run has the same time budget: they end together
# at most 8 files, 16 MiB each, come back from a call: the runs' folders packed into as few tars as fit
python3 - $SWEEP $OUT "${TABLE[@]}" <<'PY'
import sys, tarfile, pathlib
sweep, out, runs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), [r.split()[0] for r in sys.argv[3:]]
size = lambda n: sum(f.stat().st_size for f in (sweep / n).rglob("*") if f.is_file())
groups, cur, total = [], [], 0
for n in runs:
    if cur and total + size(n) > 15 * 2**20:
        groups.append(cur); cur, total = [], 0
    cur.append(n); total += size(n)
groups += [cur] if cur else []
for k, g in enumerate(groups):
    with tarfile.open(out / f"runs_{k}.tar", "w") as t:
        for n in g:
            t.add(sweep / n, arcname=n)
PY
el tarred
wait
tar -C $SWEEP -czf $OUT/logs.tgz --exclude='ev-*' --exclude='f*s*/' $(cd $SWEEP && ls *.log *.out *.val 2>/dev/null); el done
