#!/usr/bin/env bash
# The suite's speed on one device, in one process (scripts/device_check.py): the Table 12 inference table with
# ratios to K3DN-Light, training iterations per second, evaluation of 76 DPDD-size pairs, Wiener per image.
#
#   scripts/device_check.sh                 # on a GPU machine: full sizes, fp32 and bf16 -> results/device_check/
#   scripts/device_check.sh --reduced       # on a CPU: reduced sizes, under a minute (CI)
#   K3DN_INSTALL=cu124 scripts/device_check.sh   # first install the CUDA PyTorch build and the suite (needs PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${K3DN_INSTALL:-}" ]]; then
    t0=$(date +%s)
    python -m pip install -q torch --index-url "https://download.pytorch.org/whl/${K3DN_INSTALL}"
    python -m pip install -q -e .
    echo "install: $(( $(date +%s) - t0 )) s"
fi
python -c "import torch; print('torch', torch.__version__, '| CUDA', torch.cuda.is_available(), '|', \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
python scripts/device_check.py --out "${K3DN_DEVICE_CHECK_OUT:-results/device_check}" "$@"
