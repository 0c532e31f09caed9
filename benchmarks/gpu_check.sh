#!/usr/bin/env bash
# The GPU check of issue 14: the CUDA path end to end (training in bf16 at full LegNet size on a synthetic
# DREAM-sized file, BERT-base MLM steps, the S5 CNN at published width; evaluate, predict, ISM, export),
# with sequences/s and peak GPU memory, to benchmarks/results/gpu.json. Installs nothing; needs the
# project's environment (PYTHON, default .venv/bin/python) with a CUDA build of torch.
#   bash benchmarks/gpu_check.sh                 # on a GPU machine, about 5-8 minutes
#   bash benchmarks/gpu_check.sh --device cpu --rows 20000 --steps 4 --small   # a dry run on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU:', torch.cuda.is_available() and torch.cuda.get_device_name())"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
