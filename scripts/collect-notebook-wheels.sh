#!/usr/bin/env bash
# Collect Jupyter Server's and TensorBoard's wheels (and their dependencies) for the offline tests of `devagent
# jupyter` and `devagent tensorboard`: tests/integration/test_notebook_servers.py installs them, with no index, into
# a venv in one test environment's workspace. They are not put into the base image: every environment would carry
# them, and the other tests do not need them. Measured on the 2-core build machine (2026-12): about 45 MB,
# 15-20 s to download from PyPI; 11 s to install into a venv.
# Reused when the folder holds them already (remove build/notebook-wheels to collect again).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
image=${DEVAGENT_BASE_TAG:-devagent-base:bookworm}
wheels="$here/build/notebook-wheels"
stamp="$wheels/.complete"

if [ -e "$stamp" ]; then
  echo "notebook wheels are present in $wheels"
  exit 0
fi
# For the base image's Python, which may be older than this machine's (a package may require a newer patch release).
version=$(docker run --rm --network none "$image" python3 -c 'import platform; print(platform.python_version())')
echo "==> collecting jupyter_server and tensorboard wheels for Python $version into $wheels"
rm -rf "$wheels"
mkdir -p "$wheels"
"$python" -m pip download -q --only-binary=:all: --python-version "$version" --dest "$wheels" jupyter_server tensorboard
touch "$stamp"
