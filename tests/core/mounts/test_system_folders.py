"""The folders no environment may mount as its workspace: each system tree, each folder of others' folders, a home."""

from __future__ import annotations

import pytest

from devagent.core.mounts.system_folders import system_folder

TREES = ["/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sys", "/dev",
         "/run", "/var/lib/docker"]
FOLDERS = ["/", "/var", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/mail", "/var/backups",
           "/opt", "/srv", "/mnt", "/media", "/tmp"]
HOMES = [("ana's", "/home/ana"), ("your", "/srv/me/")]


@pytest.mark.parametrize("tree", TREES)
def test_a_system_tree_is_refused_itself_and_everything_inside_it(tree: str) -> None:
    assert system_folder(tree) == "a system folder"
    assert system_folder(f"{tree}/x/y") == f"inside the system folder {tree}"
    assert system_folder(f"{tree}/x/..") == "a system folder"


@pytest.mark.parametrize("tree", TREES)
def test_a_folder_that_only_starts_like_a_system_tree_is_not_inside_it(tree: str) -> None:
    assert system_folder(f"{tree}-data") is None


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_of_others_folders_is_refused_but_a_project_below_it_is_not(folder: str) -> None:
    assert system_folder(folder) == "a system folder"
    assert system_folder(folder.rstrip("/") + "/project") is None


def test_the_folder_of_all_home_folders_is_named_as_such_also_spelled_with_a_slash() -> None:
    assert system_folder("/home") == "the folder of all home folders"
    assert system_folder("/home/") == "the folder of all home folders"
    assert system_folder("/home/./ana/..") == "the folder of all home folders"


@pytest.mark.parametrize(("path", "said"), [
    ("/home/ana", "ana's home folder"),
    ("/home/ana/", "ana's home folder"),
    ("/home/ana/code/..", "ana's home folder"),
    ("/srv/me", "your home folder"),  # the home as given ends in a slash
    ("/home/ana/code", None),
    ("/home/anabel", None),
    ("/home/bob", None),
])
def test_a_home_folder_itself_is_refused_a_folder_below_it_is_not(path: str, said: str | None) -> None:
    assert system_folder(path, HOMES) == said


def test_an_empty_home_refuses_nothing_and_no_homes_refuse_no_home() -> None:
    assert system_folder("/home/ana") is None
    assert system_folder("/work", [("nobody's", "")]) is None
    assert system_folder(".", [("nobody's", "")]) is None


def test_a_system_folder_is_said_before_a_home_that_is_one() -> None:
    assert system_folder("/root/..", [("root's", "/")]) == "a system folder"
    assert system_folder("/opt", [("svc's", "/opt")]) == "a system folder"
