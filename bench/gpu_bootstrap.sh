#!/usr/bin/env bash
# The GPU bootstrap bench as run on the device machine (one H200, no network): Python packages that machine lacks
# travel as wheels in .whl/ (rcforge's own wheel among them, built with `pip wheel . --no-deps -w .whl`);
# logs go to $OUT. Florence-2-large first (the figure asked for), then base if time is left.
set -o pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 3
export PYTHONPATH=/tmp/site
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 --version
  (cd /tmp && python3 -c "import torch, transformers, apache_beam, pyarrow, numpy, rcforge.pipelines.bootstrap as b
print(torch.__version__, transformers.__version__, apache_beam.__version__, pyarrow.__version__, numpy.__version__)")
} 2>&1 | tee "$OUT/env.txt" || exit 4
# steady state: enough boxes that model loading and Beam's start are a small part of the pipeline's time
timeout 300 python3 bench/bench_bootstrap.py --size large --boxes ${BOXES:-960} --loop-boxes 96 --batch-size 32 64 \
    --tokens 20 --device cuda --pipeline 2>&1 | grep -v 'Loading weights' | tee "$OUT/large.log"
