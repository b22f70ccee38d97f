#!/usr/bin/env bash
# The GPU bootstrap bench as run on the device machine (one H200, no network): Python packages that machine lacks
# travel as wheels in .whl/ (rcforge's own wheel among them, built with `pip wheel . --no-deps -w .whl`);
# logs go to $OUT. Florence-2-large first (the figure asked for), then base if time is left.
#
# The wheels (here, before the run; .whl/ is ignored through .git/info/exclude, and travels with `carry: [".whl"]`):
#   P="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
#   python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $P -d .whl \
#     apache-beam==2.77.0 beartype==0.22.9 cffi==2.1.1 cryptography==50.0.2 defusedxml==0.7.1 dill==0.4.1 \
#     dnspython==2.9.2 fastavro==1.13.1 fasteners==0.20 httplib2==0.32.1 ijson==3.6.0 jsonpickle==4.1.4 \
#     objsize==0.7.1 orjson==3.13.0 proto-plus==1.29.0 pymongo==4.20.1 pytz==2026.6 zstandard==0.25.0 \
#     transformers==5.24.0 pycocotools==2.0.11
#   pip wheel -q . --no-deps -w .whl        # rcforge itself, rebuilt after every change
# (about 50 MB; the machine has torch, tokenizers, pyarrow, numpy and the rest)
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
