"""Folders no environment may mount as its workspace: the system's own, and a user's home folder itself.

A workspace is mounted read-write, and on a shared server `up` runs as root: a workspace the login user cannot
write is refused with the hint to give it to that user (``chown -R``). Followed for ``/etc`` or ``/usr``, that
hint breaks the machine; mounted as they are, such folders let the environment change the system. So they are
refused first, with their own message. Pure: the caller passes the paths, links already resolved, and the homes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

# The folder and everything inside it belongs to the system.
_SYSTEM_TREES = ("/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sys",
                 "/dev", "/run", "/var/lib/docker")
# The folder itself holds others' folders (a project in a folder below it is fine).
_SYSTEM_FOLDERS = ("/", "/home", "/var", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp",  # noqa: S108
                   "/var/mail", "/var/backups", "/opt", "/srv", "/mnt", "/media", "/tmp")  # noqa: S108


def system_folder(path: str, homes: Iterable[tuple[str, str]] = ()) -> str | None:
    """What PATH (absolute, links resolved) is when no environment may mount it, else None. HOMES: (whose, home
    folder) of the machine's users ("ana's", "your"); a home folder itself is refused, a folder below it is not.

    >>> system_folder("/etc"), system_folder("/usr/local/src"), system_folder("/home")
    ('a system folder', 'inside the system folder /usr', 'the folder of all home folders')
    >>> system_folder("/home/ana", [("ana's", "/home/ana")]), system_folder("/home/ana/code", [("ana's", "/home/ana")])
    ("ana's home folder", None)
    """
    path = posixpath.normpath(path)
    if path == "/home":
        return "the folder of all home folders"
    for tree in _SYSTEM_TREES:
        if path == tree:
            return "a system folder"
        if path.startswith(tree + "/"):
            return f"inside the system folder {tree}"
    if path in _SYSTEM_FOLDERS:
        return "a system folder"
    for whose, home in homes:
        if home and posixpath.normpath(home) == path:
            return f"{whose} home folder"
    return None
