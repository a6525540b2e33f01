"""The wheels carried into the image's build context, made from what this machine already has installed.

devagent's own wheel is built from its package folder (works for editable installs too) with container-side
requirements only; each container-side dependency is repacked from its installed files (RECORD). No package index
is asked, so `devagent up` works on air-gapped servers, and the container runs the versions the host runs.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import os
import re
import zipfile
from pathlib import Path

import devagent

CONTAINER_REQUIREMENTS = ("click", "watchdog", "nvidia-ml-py")
# What of the package goes into the image: the code, its type marker, and the VS Code snippets (`up --vscode`
# writes them from inside the environment on a server).
SHIPPED_SUFFIXES = (".py", ".typed", ".json")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(path: Path, files: dict[str, bytes], dist_info: str) -> None:
    """Write a wheel with a fresh RECORD; fixed timestamps so the same files give the same bytes."""
    record = [_record_line(name, data) for name, data in sorted(files.items())]
    record.append(f"{dist_info}/RECORD,,")
    files = {**files, f"{dist_info}/RECORD": ("\n".join(record) + "\n").encode()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])


def _source_files() -> list[tuple[str, bytes]]:
    """(path relative to the package, bytes) of every file of the running devagent package that ships, in the
    order of their paths' parts. With strings, not Path objects: every `up` reads them for payload_fingerprint,
    and pathlib's parsing was two thirds of that (issue 19)."""
    pkg = os.path.dirname(devagent.__file__)
    found: list[list[str]] = []
    # Links followed: in a source checkout, snippets/ is a link to the repository's vscode-snippets/.
    for folder, subfolders, names in os.walk(pkg, followlinks=True):
        subfolders[:] = [sub for sub in subfolders if sub != "__pycache__"]
        parts = [] if folder == pkg else os.path.relpath(folder, pkg).split(os.sep)
        found += [[*parts, name] for name in names if os.path.splitext(name)[1] in SHIPPED_SUFFIXES]
    shipped = []
    for parts in sorted(found):
        with open(os.path.join(pkg, *parts), "rb") as file:
            shipped.append(("/".join(parts), file.read()))
    return shipped


def build_devagent_wheel(dest: Path) -> Path:
    """devagent's own wheel, from the source of the running package."""
    version = devagent.__version__
    dist_info = f"devagent-{version}.dist-info"
    files = {f"devagent/{rel}": data for rel, data in _source_files()}
    requires = "".join(f"Requires-Dist: {r}\n" for r in CONTAINER_REQUIREMENTS)
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: devagent\nVersion: {version}\nRequires-Python: >=3.10\n{requires}"
    ).encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: devagent\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\ndevagent = devagent.cli:main\n"
    path = dest / f"devagent-{version}-py3-none-any.whl"
    _write_wheel(path, files, dist_info)
    return path


def repack_installed(name: str, dest: Path) -> Path:
    """Repack an installed distribution into a wheel from the files its RECORD lists."""
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        raise RuntimeError(f"{name} is not installed next to devagent; reinstall devagent") from None
    listed = dist.files or []
    dist_info = next((str(f).split("/")[0] for f in listed if str(f).endswith(".dist-info/METADATA")), None)
    if dist_info is None:
        raise RuntimeError(f"cannot find the metadata of installed {name}")
    files: dict[str, bytes] = {}
    for f in listed:
        rel = str(f)
        # Scripts live outside site-packages (../../bin); pip recreates them from entry_points.txt.
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "/RECORD", "/INSTALLER")):
            continue
        if rel.endswith(("/REQUESTED", "/direct_url.json")):
            continue
        located = Path(str(f.locate()))
        if located.is_file():
            files[rel] = located.read_bytes()
    wheel_meta = files.get(f"{dist_info}/WHEEL", b"").decode()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    tag = tags[0] if tags else "py3-none-any"
    path = dest / f"{_normalize(dist.metadata['Name'])}-{dist.version}-{tag}.whl"
    _write_wheel(path, files, dist_info)
    return path


def _requirement_closure(roots: tuple[str, ...]) -> list[str]:
    """Installed names needed by ROOTS, following unconditional Requires-Dist lines."""
    return [name for name, _, _ in _closure_metadata(roots)]


def _closure_metadata(roots: tuple[str, ...]) -> list[tuple[str, md.Distribution, str]]:
    """(name, distribution, version) of each name _requirement_closure gives: each distribution found and its
    metadata parsed once (payload_fingerprint runs on every `up`)."""
    seen: list[tuple[str, md.Distribution, str]] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if _normalize(name) in (_normalize(s) for s, _, _ in seen):
            continue
        dist = md.distribution(name)
        meta = dist.metadata
        seen.append((name, dist, meta["Version"]))
        # md.requires(name): the metadata's Requires-Dist, else (an egg-info) its requires.txt.
        for req in meta.get_all("Requires-Dist") or dist.requires or []:
            if ";" in req:  # markers (extras, other platforms): not needed in a Linux container
                continue
            todo.append(re.split(r"[\s<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def build_wheelhouse(dest: Path) -> list[Path]:
    """Write devagent's wheel and its container-side dependencies' wheels into DEST."""
    dest.mkdir(parents=True, exist_ok=True)
    wheels = [build_devagent_wheel(dest)]
    wheels += [repack_installed(name, dest) for name in _requirement_closure(CONTAINER_REQUIREMENTS)]
    return wheels


def payload_fingerprint() -> tuple[tuple[str, str], ...]:
    """What the wheelhouse would hold, as (name, sha256) pairs, without building it.

    devagent's own source files, and each dependency's version and RECORD (which lists a hash of every
    installed file): the same pairs mean the same wheels, so a cached image is found without zipping anything.
    """
    source = hashlib.sha256()
    for rel, data in _source_files():
        source.update(rel.encode() + b"\0" + data + b"\0")
    pairs = [(f"devagent=={devagent.__version__}", source.hexdigest())]
    for name, dist, version in _closure_metadata(CONTAINER_REQUIREMENTS):
        record = dist.read_text("RECORD") or ""
        pairs.append((f"{_normalize(name)}=={version}", hashlib.sha256(record.encode()).hexdigest()))
    return tuple(pairs)
