"""`down` and `ls` of a Provisioner (control/lifecycle/provision.py, which does `up`): what the engine holds of
an environment, and what this DEVAGENT_HOME keeps of it, removed or listed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devagent.control.engine import home_volume
from devagent.control.features import teammates
from devagent.control.features.listing import Row
from devagent.errors import DevagentError, ExitStatus

if TYPE_CHECKING:
    from devagent.control.lifecycle.provision import Provisioner


def down(provisioner: Provisioner, name: str, *, keep_home: bool = False) -> list[str]:
    """Remove the container, the ssh alias, the pinned key, the host key and the home volume (KEEP_HOME: not the
    home). Workspace files stay.

    Also every container an interrupted or killed `up` of NAME left under a temporary name, whoever's."""
    with provisioner._env_lock(name) as lock:
        lock.discard()
        return _down(provisioner, name, keep_home=keep_home)


def _down(provisioner: Provisioner, name: str, *, keep_home: bool) -> list[str]:
    removed: list[str] = []
    home_size = None
    info = provisioner.engine.get(name)
    if info is not None:
        if info.labels.get("devagent.managed") != "true":
            raise DevagentError(f"the container {name!r} was not made by devagent; leaving it alone",
                                status=ExitStatus.CONFLICT, hint=f"remove it yourself: docker rm -f {name}")
        if not teammates.owned_by(info, teammates.caller_keys(provisioner.paths, name)):
            # A stale name: ours is gone, someone else's bears it. Their container, leftovers and leases stay;
            # our own alias, keys, record and invitations of that name point at nothing of ours: they go.
            mine = "\n".join(f"removed your {item}" for item in _forget(provisioner, name))
            raise teammates.not_owned(info, command=f"down {name}", server=provisioner.host, details=mine or None)
        home_size = home_volume.measure(provisioner.engine, info)  # while the container can still say
        provisioner.engine.remove(info.id)
        removed.append(f"container {name}")
    for leftover in provisioner._leftovers(name, ours_only=False):
        if not teammates.owned_by(leftover, teammates.caller_keys(provisioner.paths, name)):
            continue  # another person's up of that name, perhaps running now
        provisioner.engine.remove(leftover.id)
        removed.append(f"container {leftover.name}, left behind by an interrupted up")
    for lease in provisioner.gpus.release(name):
        removed.append(f"GPU lease {lease.gpu_uuid}")
    home = home_volume.remove(provisioner.engine, name, keep=keep_home, report=provisioner.report, size=home_size)
    # What the site holds beyond the engine (a Slurm job: cancelled and waited for), after the engine's part: a
    # node may end the ssh sessions of a job that ended (pam_slurm_adopt); before the record goes.
    removed += provisioner.site.release(name)
    removed += _forget(provisioner, name)
    removed += home
    if not removed:
        raise DevagentError(f"no environment named {name!r}", status=ExitStatus.NOT_FOUND,
                            hint="`devagent ls` lists the environments")
    return removed


def _forget(provisioner: Provisioner, name: str) -> list[str]:
    """What this DEVAGENT_HOME keeps of NAME, removed: its alias, keys, record and invitations."""
    removed: list[str] = []
    if provisioner.ssh_config.remove(name):
        removed.append(f"ssh alias {name} and its pinned host key")
    if provisioner.paths.host_key(name).exists():
        provisioner._forget_host_key(name)
        removed.append("host key")
    if provisioner.records.remove(name):
        removed.append(f"devagent's record of {name} on {provisioner.host}")
    if teammates.forget(provisioner.paths, name):
        removed.append("invitations")
    return removed


def ls(provisioner: Provisioner) -> list[Row]:
    aliases = set(provisioner.ssh_config.names())
    rows: list[Row] = []
    for c in sorted(provisioner.engine.list_managed(), key=lambda c: c.name):
        name = c.labels.get("devagent.name", c.name)
        if c.name != name:  # half-made, left by an interrupted up: not an environment (down NAME removes it)
            continue
        rows.append(Row(
            name=name, state=c.status, health=c.health, port=c.host_port or c.fixed_port,
            user=c.labels.get("devagent.user"), image=c.image, gpus=c.labels.get("devagent.gpus"),
            workspace=c.labels.get("devagent.workspace"), ssh_alias=name if name in aliases else None,
            created=c.created, invited=tuple(teammates.invited_names(provisioner.paths, name)),
            owner=c.labels.get(teammates.OWNER_NAME_LABEL), mine=teammates.callers_own(c, provisioner.paths),
            host=provisioner.host))
    return rows
