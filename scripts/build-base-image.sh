#!/usr/bin/env bash
# Build an offline base image from Debian's packages, with no image registry: debootstrap a minimal Debian,
# install the CPU build of torch from wheels into /opt/venv (the user's interpreter, first on PATH), then
# `docker import`. Reused when the tag already exists.
#   devagent-base:bookworm  (default) Debian 12, OpenSSH 9.2, torch: what most tests run on
#   DEVAGENT_BASE_SUITE=trixie TORCH_VERSION=none  →  devagent-base:trixie, Debian 13, OpenSSH 10.0, no torch:
#     the tests of what sshd >= 9.8 does differently (PerSourcePenalties)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
suite=${DEVAGENT_BASE_SUITE:-bookworm}
tag=${DEVAGENT_BASE_TAG:-devagent-base:$suite}
torch_version=${TORCH_VERSION:-2.13.0}
python=${PYTHON:-python3}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag is present (remove it with 'docker rmi $tag' to rebuild)"
  exit 0
fi
command -v debootstrap >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null
}

# The mirror this machine's apt already uses, so the script works wherever apt works.
mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
           | grep -v security | awk '{print $2}' | head -n1 || true)
fi
[ -n "$mirror" ] || { echo "build-base-image: no Debian mirror found under /etc/apt" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/devagent-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
wheels="$here/build/base-wheels"

if [ "$torch_version" != none ]; then
  echo "==> collecting torch $torch_version (CPU) and numpy wheels into $wheels"
  mkdir -p "$wheels"
  "$python" -m pip download -q --only-binary=:all: --dest "$wheels" "torch==$torch_version" numpy
fi

echo "==> debootstrap $suite from $mirror"
debootstrap --variant=minbase \
  --include=python3,python3-venv,openssh-server,openssh-client,bash,tar,git,procps,ca-certificates,less,curl \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

chroot "$rootfs" /usr/bin/python3 -m venv /opt/venv
if [ "$torch_version" != none ]; then
  echo "==> installing torch into /opt/venv"
  mkdir -p "$rootfs/tmp/wheels"
  cp "$wheels"/*.whl "$rootfs/tmp/wheels/"
  chroot "$rootfs" /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels "torch==$torch_version" numpy
fi
rm -rf "$rootfs/tmp/wheels" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# No host keys in the image: devagent generates one per environment on the client.
rm -f "$rootfs"/etc/ssh/ssh_host_*

echo "==> docker import $tag"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --message "devagent offline base: Debian $suite + torch $torch_version (CPU)" \
  - "$tag" >/dev/null
docker image inspect "$tag" --format 'built {{.RepoTags}} {{.Size}} bytes'
