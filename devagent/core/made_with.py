"""What an existing environment was made with, read back from its container's labels, for `up NAME` on it.

`up NAME` with no option on an environment that exists starts it as it was made; `up` with options that differ
names each option that differs (the environment's spec hash says only *that* something does). Limits and the
agent's options are labelled since this devagent (OPTIONS_LABEL); a difference no label shows (a team image, or
limits of a container made before) is said as such. Pure: labels in, text out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from devagent.core.gpu.idle_rule import format_duration
from devagent.core.spec import LABEL_PREFIX, EnvSpec, format_size

OPTIONS_LABEL = f"{LABEL_PREFIX}options"


def _options(spec: EnvSpec) -> dict[str, str]:
    """SPEC's limits and agent options as `up` takes them on the command line."""
    limits, agent = spec.limits, spec.agent
    return {"--memory": format_size(limits.memory), "--cpus": "all" if limits.cpus is None else f"{limits.cpus:g}",
            "--shm-size": format_size(limits.shm_size), "--pids": str(limits.pids),
            "--notebook": agent.notebook or "(default)", "--watch": " ".join(agent.watch) or "(default)",
            "--poll-saves": "yes" if agent.polling else "no",
            "--idle-release": "none" if spec.idle_release is None else format_duration(spec.idle_release)}


def option_labels(spec: EnvSpec) -> dict[str, str]:
    """The label that records SPEC's limits and agent options (besides spec.labels)."""
    return {OPTIONS_LABEL: json.dumps(_options(spec), sort_keys=True)}


def differences(spec: EnvSpec, labels: Mapping[str, str]) -> list[str]:
    """Each option SPEC asks for that the container with LABELS was not made with, as `--option WANTED (made with
    MADE)`.

    >>> from devagent.core.spec import EnvSpec, Limits
    >>> made = {**EnvSpec("x", "b:1", "/w").labels(version="1", image="i"),
    ...         **option_labels(EnvSpec("x", "b:1", "/w", limits=Limits(cpus=8.0)))}
    >>> differences(EnvSpec("x", "b:2", "/w", limits=Limits(cpus=8.0, pids=2048)), made)
    ['--base-image b:2 (made with b:1)', '--pids 2048 (made with 4096)']
    """
    def label(key: str) -> str | None:
        return labels.get(f"{LABEL_PREFIX}{key}")

    try:
        recorded = json.loads(labels.get(OPTIONS_LABEL) or "{}")
    except ValueError:
        recorded = {}
    made = {"--base-image": None if spec.image else label("base-image"), "--workspace": label("workspace"),
            "--user": label("user"), "--gpus": label("gpus"), "--sshd-profile": label("sshd-profile"),
            **(recorded if isinstance(recorded, dict) else {})}
    wanted = {"--base-image": spec.base_image, "--workspace": spec.workspace, "--user": spec.user,
              "--gpus": spec.gpus.describe(), "--sshd-profile": spec.sshd_profile, **_options(spec)}
    said = [f"{option} {value} (made with {made[option]})" for option, value in wanted.items()
            if made.get(option) is not None and made[option] != value]
    if not said:
        said.append("options its labels do not record (a team image; limits or notebook options of an environment "
                    "made by an older devagent)")
    return said


def as_made(spec: EnvSpec, labels: Mapping[str, str]) -> EnvSpec:
    """SPEC with what the container says it was made with, for starting it as it is: its login user, workspace,
    base image and sshd profile."""
    def label(key: str, default: str) -> str:
        return labels.get(f"{LABEL_PREFIX}{key}") or default

    return dataclasses.replace(spec, user=label("user", spec.user), workspace=label("workspace", spec.workspace),
                               base_image=label("base-image", spec.base_image),
                               sshd_profile=label("sshd-profile", spec.sshd_profile))
