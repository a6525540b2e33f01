#!/usr/bin/env bash
# Stop the dockerd that scripts/ensure-docker.sh started, by its pid; leave any other daemon alone.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$here/build/dockerd.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
rm -f "$pidfile"
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || exit 0
    sleep 1
  done
  echo "stop-docker: dockerd $pid still running after 30 s" >&2
fi
