#!/usr/bin/env bash
# Make sure a Docker Engine answers on the local socket.
# Installs docker.io when dockerd is missing (Debian), starts dockerd detached when none runs,
# and records the pid of a daemon it started in build/dockerd.pid so `scripts/stop-docker.sh` can stop exactly it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$here/build"

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi
if docker info 2>&1 | grep -q 'permission denied'; then
  echo "ensure-docker: the Docker socket exists but you may not use it: add yourself to the docker group" >&2
  exit 1
fi
echo "ensure-docker: starting dockerd (log: build/dockerd.log)" >&2
# setsid + redirects: the daemon must not hold the caller's stdout/stderr (CI waits on that pipe).
setsid dockerd >"$here/build/dockerd.log" 2>&1 </dev/null &
echo $! >"$here/build/dockerd.pid"
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; see build/dockerd.log" >&2
tail -n 20 "$here/build/dockerd.log" >&2 || true
exit 1
