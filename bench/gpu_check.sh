#!/usr/bin/env bash
# The GPU check: what hpo's tests cannot show on a CPU, measured on a GPU machine (bench/README.md, "GPU check").
#   bash bench/gpu_check.sh            # the benchmark study: under 8 minutes on one GPU
#   bash bench/gpu_check.sh --quick    # the quick study, about 2 minutes
# On one GPU: the benchmark study with hpo and the bare PyTorch loop on the same batches; prints the throughput
# ratio, the precision used, peak GPU memory per trial and whether memory stays flat across trials.
# With 2+ GPUs also `hpo run --workers auto` on a PostgreSQL storage (a throwaway server when PostgreSQL's
# binaries are installed, or GPU_CHECK_STORAGE=postgresql+psycopg://... with an empty database) and the
# trials per device. Needs a CUDA build of torch and, beside the repo, shared/data (as bench/run.py).
set -euo pipefail
cd "$(dirname "$0")/.."

probe='import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)'
if ! gpus=$(python -c "$probe" 2>/dev/null); then
  echo "gpu_check: python cannot import torch here; install the project first (README: Set-up)" >&2
  exit 2
fi
if [ "$gpus" -lt 1 ]; then
  build=$(python -c 'import torch; print("torch", torch.__version__ + ", CUDA", torch.version.cuda or "none (a CPU build)")')
  echo "gpu_check: no CUDA GPU visible to torch ($build); run it on a machine with an NVIDIA GPU and a CUDA" \
       "build of torch (pip install torch --index-url https://download.pytorch.org/whl/cu124)" >&2
  exit 2
fi
exec python bench/gpu_check.py --gpus "$gpus" "$@"
