"""A Slurm cluster as the laptop sees it, on loopback: the login node and each compute node is a test sshd on this
machine's 127.0.0.1 (topology.py), Slurm is slurm_cluster.py's, every node's engine is this machine's.

The laptop reaches only the login node (`hpc-login`, through its relay, like every --host alias). The nodes are
reached through it with ProxyJump: ssh asks the login node's sshd for a TCP stream to the node. On a real cluster
the login node resolves the node's name (gpu07) itself; here every node is 127.0.0.1 on a port of its own, which
only the laptop's ssh config can say (a `Host n1` block with HostName 127.0.0.1 and the port; the jump host's
sshd only forwards), and the name could not be resolved on the login node without changing this machine's
settings. Each node's host key is pinned in the laptop's known_hosts, as everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.integration.slurm_cluster import NODES, SlurmCluster
from tests.integration.topology import Sshd, Topology

LOGIN = "hpc-login"


@dataclass
class SlurmSites:
    topology: Topology
    cluster: SlurmCluster
    login: Sshd
    nodes: dict[str, Sshd]


def slurm_sites(topology: Topology, cluster: SlurmCluster, *, user: str,
                node_path: dict[str, str] | None = None) -> SlurmSites:
    """The login node's sshd (sessions get SLURM_CONF, as a cluster's profile would), one sshd per node, and the
    laptop's aliases for them, all logging in as USER. NODE_PATH: a node's sessions' PATH (a stand-in
    nvidia-smi first)."""
    login = topology.start_sshd(extra=[f"SetEnv SLURM_CONF={cluster.conf}"])
    topology.laptop.add_alias(LOGIN, login, user=user)
    nodes = {}
    laptop = topology.laptop
    for node in NODES:
        path = (node_path or {}).get(node)
        sshd = topology.start_sshd(extra=[f"SetEnv SLURM_CONF={cluster.conf}" + (f" PATH={path}" if path else "")])
        lines = [f"Host {node}", f"  User {user}", "  HostName 127.0.0.1", f"  Port {sshd.port}",
                 f"  IdentityFile {laptop.key}", "  IdentitiesOnly yes", f"  HostKeyAlias {sshd.host_key_alias}",
                 f"  UserKnownHostsFile {laptop.known_hosts}", "  StrictHostKeyChecking yes", ""]
        laptop.ssh_config.write_text(laptop.ssh_config.read_text() + "\n".join(lines) + "\n")
        nodes[node] = sshd
    return SlurmSites(topology, cluster, login, nodes)
