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
# The laptop -> server tests: a real sshd started by the tests (never as a service), a relay, network namespaces.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v socat >/dev/null || need+=(socat)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
# The registry tests: the Distribution registry, started by the tests on 127.0.0.1 (never as a service).
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
# The Slurm tests: a real Slurm 22.05 (munged, slurmctld, two slurmd, the client commands) started by the tests with
# their own config on 127.0.0.1 (never as services: tests/integration/slurm_cluster.py).
command -v munged >/dev/null || need+=(munge)
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# The devcontainer.json oracle test: the reference `devcontainer` CLI (npm @devcontainers/cli) runs on Node.js.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # openssh-server must not start a system sshd on port 22, nor munge/slurmctld/slurmd their system daemons: a
  # policy-rc.d that refuses every service start, only for this install and only when the machine has none of its
  # own.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi
# The reference Dev Containers CLI, pinned: tests/core/devcontainer/test_config_file_oracle.py compares devagent's
# reading of real devcontainer.json files with its `devcontainer read-configuration`.
DEVCONTAINERS_CLI=0.89.0
if [ "$(devcontainer --version 2>/dev/null)" != "$DEVCONTAINERS_CLI" ]; then
  echo "install-deps: npm install -g @devcontainers/cli@$DEVCONTAINERS_CLI" >&2
  npm install -g --no-fund --no-audit "@devcontainers/cli@$DEVCONTAINERS_CLI" >/dev/null
fi
