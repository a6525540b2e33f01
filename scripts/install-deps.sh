#!/usr/bin/env bash
# Install the Debian packages devagent's build, demo and tests need, only those that are missing.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v vim >/dev/null || need+=(vim)   # the watcher tests drive the real vim
command -v make >/dev/null || need+=(make)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi
