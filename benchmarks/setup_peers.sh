#!/usr/bin/env bash
# Build benchmarks/.venv-peers: a separate venv holding the peer libraries
# (torch-rechub, deepctr-torch) that bench_mmoe.py compares skmtl against.
# Kept apart from the project's venv so the peers cannot change its packages.
#
# Usage: bash benchmarks/setup_peers.sh [PYTHON]   (default: python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="$here/.venv-peers"
python="${1:-python3}"

"$python" -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install --upgrade pip >/dev/null
# 1. torch first and pinned: the CPU build. An unpinned torch would pull a
#    multi-GB CUDA build.
$pip install "torch==2.13.0"
# 2. The common scientific stack (torch already satisfied, so it stays).
$pip install "torch==2.13.0" numpy scipy "scikit-learn>=1.6" "pandas>=2.1" "tqdm>=4.60" requests
# 3. The peers, without letting them re-resolve torch.
$pip install --no-deps "torch-rechub==0.9.0" "deepctr-torch==0.3.0"
# 4. skmtl itself (editable), so the same venv can also run the skmtl/floor
#    implementations if wanted.
$pip install --no-deps -e "$repo"
$venv/bin/python - <<'PY'
import torch, torch_rechub, deepctr_torch  # noqa: F401
print("peers venv OK: torch", torch.__version__)
PY
