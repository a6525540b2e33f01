#!/usr/bin/env bash
# The server-side users of the laptop -> server tests (tests/integration/topology.py), made once per machine:
#   devagent-srv, devagent-srv2  in the docker group (two "server users", as two teammates on one GPU server)
#   devagent-nodock              not in it (the "may not use Docker" error)
# Their password field is '*' (no password, not locked: OpenSSH refuses a locked account even with a key).
set -euo pipefail
getent group docker >/dev/null || groupadd --system docker
for user in devagent-srv devagent-srv2 devagent-nodock; do
  if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$user"
    usermod -p '*' "$user"
  fi
done
for user in devagent-srv devagent-srv2; do
  id -nG "$user" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$user"
done
