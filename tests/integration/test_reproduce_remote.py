"""`devagent reproduce --host SERVER` from a laptop that reaches the server only through ssh (tests/integration/
topology.py). The run, its notebook and its workspace are on the server; so are the clone, the new environment and
both comparisons. A real CPU run of the SimpleNet example with a fixed seed, reproduced with equal metrics; a run
whose patch no longer applies is refused (21) and leaves nothing on the server or the laptop; a run whose notebook
names a hostile image is reproduced in it, but that image never gets the original workspace.
"""

from __future__ import annotations

import contextlib
import io
import os
import pwd
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_IMAGE, container_names
from tests.integration.topology import Topology

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_simplenet.py"
COMMAND = "devagent run -- python3 train.py --epochs 2 --steps 5 --seed 7"
SERVER_USER = "devagent-srv"


def final_loss(text: str) -> str:
    return re.findall(r"^epoch=2 loss=(\S+)", text, re.M)[-1]


def test_a_run_on_the_server_is_reproduced_there_and_a_broken_patch_is_refused(topology: Topology, name: str,
                                                                               docker_client) -> None:
    laptop = topology.laptop
    server = pwd.getpwnam(SERVER_USER)
    home = Path(server.pw_dir)
    ws, again = home / "devagent" / name, home / "devagent" / f"{name}-run1"
    evil = home / "devagent" / f"{name}-evil"
    try:
        laptop.devagent("up", name, "--host", "gpu-server", "--base-image", BASE_IMAGE, "--memory", "2g",
                        check=True, timeout=900)
        shutil.copy(EXAMPLE, ws / "train.py")
        os.chown(ws / "train.py", server.pw_uid, server.pw_gid)  # the server user's, as a save of theirs would be
        made = laptop.ssh(name, "cd ~/workspace && git init -q && git add train.py && "
                                "git -c user.name=t -c user.email=t@example.invalid commit -qm first && "
                                "sed -i 's/default=64)/default=32)/' train.py", timeout=60)
        assert made.returncode == 0, made.stderr
        ran = laptop.ssh(name, f"cd ~/workspace && {COMMAND}", timeout=300)
        assert ran.returncode == 0, ran.stderr
        notebook = ws / "lab-notebook.md"
        patch = ws / "lab-notebook.assets" / "run-1.patch"

        # A patch that no longer applies: refused with its reason, nothing made on either side.
        good = patch.read_bytes()
        patch.write_bytes(good.replace(b"default=64)", b"default=65)"))
        refused = laptop.devagent("reproduce", f"devagent/{name}/lab-notebook.md#run-1", "--host", "gpu-server")
        assert refused.returncode == 21, refused.output
        assert f"Error: run 1's patch {patch} does not apply to commit " in refused.stderr
        assert not again.exists()
        assert container_names(docker_client, f"{name}-run1") == []
        assert not (laptop.devagent_home / "environments" / f"{name}-run1.json").exists()
        patch.write_bytes(good)

        # The notebook named relative to the server user's home, as `up --workspace` is.
        result = laptop.devagent("reproduce", f"devagent/{name}/lab-notebook.md#run-1", "--host", "gpu-server",
                                 timeout=900)
        assert result.returncode == 0, result.output
        assert f"cloning {ws} at " in result.stderr and f"into {again} on gpu-server" in result.stderr
        assert "applying run-1.patch" in result.stderr
        assert f"✔ environment {name}-run1 from devagent/env:" in result.stdout and " on gpu-server," in result.stdout
        assert re.search(r"^  loss \S+ vs \S+ ✓$", result.stdout, re.M), result.stdout
        assert f"✔ run 1 reproduced (environment {name}-run1;" in result.stdout
        # The code is the run's, on the server and the server user's: its commit with its uncommitted change.
        assert "default=32)" in (again / "train.py").read_text()
        assert (again / "train.py").stat().st_uid == server.pw_uid
        new_text = (again / "lab-notebook.md").read_text()
        assert re.search(r"^## .* · run 1 · train\.py · ✅ exit 0$", new_text, re.M)
        assert re.search(r"^## .* · reproduction of run 1 · ✅ .*loss \S+ vs \S+ ✓$", new_text, re.M), new_text
        assert final_loss(new_text) == final_loss(notebook.read_text())
        assert re.search(r"^## .* · run 1 reproduced · ✅ .* loss \S+ vs \S+ ✓\nas run 1 in `"
                         + re.escape(str(again / "lab-notebook.md")) + f"` \\(environment `{name}-run1`\\)$",
                         notebook.read_text(), re.M), notebook.read_text()
        # No container wrote the comparisons (the server user's login did); the alias of the new one jumps.
        helpers = docker_client.api.containers(all=True, filters={"label": "devagent.helper"})
        assert [c for c in helpers if {m.get("Source") for m in c.get("Mounts", [])} & {str(ws), str(again)}] == []
        assert laptop.ssh(f"{name}-run1", "id", "-u").stdout.strip() == str(server.pw_uid)

        a_notebooks_image_never_gets_the_original_workspace(laptop, docker_client, name, ws=ws, evil=evil)
    finally:
        for env in (f"{name}-evil", f"{name}-run1", name):
            laptop.devagent("down", env, timeout=300)
        for folder in (ws, again, evil):
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(Exception):
            docker_client.images.remove(f"{name}-hostile:1", force=True)


def a_notebooks_image_never_gets_the_original_workspace(laptop, docker_client,  # type: ignore[no-untyped-def]
                                                        name: str, *, ws: Path, evil: Path) -> None:
    """A crafted notebook names another image: devagent.* labels forged, an entrypoint that takes what is mounted
    at /workspace. The reproduction runs in it with its own new workspace, as any image reproduce starts does; the
    original workspace never reaches it, and both comparisons are still appended."""
    notebook = ws / "lab-notebook.md"
    image = re.findall(r'"image": "([^"]+)"', notebook.read_text())[0]
    hostile = hostile_image(docker_client, image, tag=f"{name}-hostile:1")
    notebook.write_text(notebook.read_text().replace(f'"image": "{image}"', f'"image": "{hostile}"'))
    crafted = laptop.devagent("reproduce", f"devagent/{name}/lab-notebook.md#run-1", "--host", "gpu-server",
                              "--name", f"{name}-evil", timeout=900)
    assert crafted.returncode == 0, crafted.output
    assert f"✔ environment {name}-evil from {hostile} on gpu-server," in crafted.stdout
    assert not (ws / MARKER).exists() and not (evil / MARKER).exists()
    assert len(re.findall(r"^## .* · run 1 reproduced · ✅ ", notebook.read_text(), re.M)) == 2, notebook.read_text()
    assert re.search(r"^## .* · reproduction of run 1 · ✅ ", (evil / "lab-notebook.md").read_text(), re.M)

MARKER = "taken-by-the-notebooks-image"


def hostile_image(docker_client, base: str, *, tag: str) -> str:  # type: ignore[no-untyped-def]
    """An image FROM BASE with forged devagent.* labels whose entrypoint leaves MARKER in /workspace (where a
    throw-away container would mount a workspace) before it runs the command it was given."""
    dockerfile = (f"FROM {base}\nLABEL devagent.managed=true devagent.version=0.1.0 devagent.user=dev\n"
                  f'ENTRYPOINT ["/bin/sh", "-c", "touch /workspace/{MARKER} 2>/dev/null; exec \\"$@\\"", "sh"]\n'
                  'CMD ["devagent", "agent"]\n')
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    return tag
