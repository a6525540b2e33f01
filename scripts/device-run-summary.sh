#!/bin/bash
# A real training run through `devagent run` on a GPU machine that has the repository but not devagent (no
# Docker, no internet): the seed's SimpleNet (784 -> 128 -> 10, synthetic data), twice, the second with another
# learning rate, in a fresh git workspace. Needs python3 with torch and nvidia-ml-py; click comes from the wheels
# in build/device-wheels (carried along). With $OUT set, the notebook and its assets are copied there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
SITE="$WORK/site"
python3 -m pip install -q --no-index --no-deps --target "$SITE" "$ROOT"/build/device-wheels/*.whl
export PYTHONPATH="$ROOT:$SITE"
WS="$WORK/workspace"
mkdir -p "$WS"
cp "$ROOT/examples/train_simplenet.py" "$WS/train_simplenet.py"
cd "$WS"
git init -q -b main
git add train_simplenet.py
git -c user.name=device -c user.email=device@example.invalid commit -qm "SimpleNet"
python3 --version
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -m devagent run -- python3 train_simplenet.py --epochs 5 --steps 200 --batch-size 256
python3 -m devagent run -- python3 train_simplenet.py --epochs 5 --steps 200 --batch-size 256 --lr 3e-3
echo "----- lab-notebook.md -----"
cat lab-notebook.md
if [ -n "${OUT:-}" ]; then
  cp -r lab-notebook.md lab-notebook.assets "$OUT"/
fi
