"""`devagent doctor`'s judgements, without I/O: the report's text and JSON, the probe's parser and the container
checks, the JSONC reader and VS Code's remote.SSH.configFile setting."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devagent.core import doctor_rules as d
from devagent.core.doctor_rules import HEALTH, Check, health_check

NAME = "pytorch-dev"

HEALTHY_PROBE = """\
Welcome to the container
devagent_probe=1
uid=1000
user=dev
home=/home/dev
bash=/usr/bin/bash
tar=tar (GNU tar) 1.34
download=/usr/bin/curl
glibc=glibc 2.36
home_writable=yes
tmp_exec=yes
agent_state=yes
agent_pid=7
workspace=/home/dev/workspace
home_df=overlay 264212084 26384028 80006884 25% /
workspace_df=/dev/vda 264212084 26384028 80006884 25% /home/dev/workspace
notebook=/home/dev/workspace/lab-notebook.md
notebook_writable=yes
probe_done=1
"""


def probe(**changes: str | None) -> dict[str, str]:
    """The healthy probe's values with CHANGES (None removes a key)."""
    values = d.parse_probe(HEALTHY_PROBE)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


ENV = d.Environment(NAME, "/srv/ana/code")


# -- the report -------------------------------------------------------------------------------------------------


def test_the_report_marks_passed_failed_with_their_fix_and_skipped_with_the_reason() -> None:
    checks = [Check("tar", True, "tar (GNU tar) 1.34"),
              Check("file permissions", False, "/h/id_ed25519 is 0644", fix="chmod 600 /h/id_ed25519"),
              Check("VS Code remote.SSH.configFile", None, "no VS Code settings.json")]
    assert d.render(checks) == [
        "✔ tar — tar (GNU tar) 1.34",
        "✘ file permissions — /h/id_ed25519 is 0644",
        "  fix: chmod 600 /h/id_ed25519",
        "– VS Code remote.SSH.configFile — skipped: no VS Code settings.json",
    ]
    assert d.summary(checks) == "1 of 3 checks failed, 1 skipped"


def test_skipped_checks_count_as_passed_and_one_failure_fails_the_whole() -> None:
    assert d.passed([Check("a", True, ""), Check("b", None, "n/a")])
    assert not d.passed([Check("a", True, ""), Check("b", False, "x", fix="y")])
    assert d.summary([Check("a", True, ""), Check("b", None, "")]) == "all 1 checks passed, 1 skipped"


def test_the_json_envelope_is_version_1_with_ok_and_every_check_as_name_ok_detail_fix() -> None:
    checks = [Check("tar", True, "1.34"), Check("bash", False, "no bash", fix="use a base image with bash"),
              Check("agent", None, "the container is not running")]
    doc = json.loads(json.dumps(d.envelope(checks)))
    assert doc == {"version": 1, "ok": False, "checks": [
        {"name": "tar", "ok": True, "detail": "1.34", "fix": None},
        {"name": "bash", "ok": False, "detail": "no bash", "fix": "use a base image with bash"},
        {"name": "agent", "ok": None, "detail": "the container is not running", "fix": None},
    ]}
    assert d.envelope(checks[::2])["ok"] is True


# -- the probe --------------------------------------------------------------------------------------------------


def test_the_parser_ignores_garbage_unknown_keys_and_whatever_comes_before_the_marker() -> None:
    output = ("uid=0\nLast login: yesterday\ndevagent_probe=1\n\nnot a pair\nuid=1000\r\nUID=5\nfoo=bar\n"
              "bash=\nuid=0\n=x\ntar=tar (GNU tar) 1.34 = ok\n")
    assert d.parse_probe(output) == {"uid": "1000", "bash": "", "tar": "tar (GNU tar) 1.34 = ok"}
    assert d.parse_probe("uid=1000\nbash=/bin/bash\n") == {}
    assert not d.probe_reached("Permission denied (publickey).\n")


def test_a_healthy_probe_gives_only_passed_checks() -> None:
    checks = d.container_checks(d.parse_probe(HEALTHY_PROBE), ENV)
    assert [c.name for c in checks] == ["bash", "tar", "download tool", "glibc", "home writable",
                                        "/tmp allows executing",
                                        "free disk in home", "free disk in the workspace", "agent",
                                        "notebook writable"]
    assert all(c.ok for c in checks), d.render(checks)
    assert by_name(checks)["free disk in home"].detail == "76.3 GiB free in /home/dev"
    assert d.login_check(d.parse_probe(HEALTHY_PROBE), name=NAME) == Check(
        "login through the alias", True, "ssh pytorch-dev logs in as dev (uid 1000)")


@pytest.mark.parametrize("key", [k for k in d.PROBE_KEYS if k in
                                 ("bash", "tar", "glibc", "home_writable", "tmp_exec", "home_df", "workspace_df",
                                  "agent_state", "agent_pid", "notebook_writable")])
def test_a_key_the_probe_did_not_report_fails_its_check(key: str) -> None:
    checks = d.container_checks(probe(**{key: None}), ENV)
    failed = [c for c in checks if c.ok is False]
    assert len(failed) == 1
    assert failed[0].detail == f"the probe did not report {key}"
    assert failed[0].fix is not None and f"devagent doctor {NAME}" in failed[0].fix


def test_a_probe_that_reported_nothing_fails_every_container_check_and_the_login() -> None:
    assert all(c.ok is False for c in d.container_checks({}, ENV))
    assert d.login_check({}, name=NAME).detail == "the probe did not report uid"


@pytest.mark.parametrize(("changes", "name", "detail", "fix"), [
    ({"bash": ""}, "bash", "no bash in the image", "use a base image that has bash"),
    ({"tar": ""}, "tar", "no tar in the image", "devagent does not install it"),
    ({"glibc": "ldd (Ubuntu GLIBC 2.27-3ubuntu1.6) 2.27"}, "glibc", "glibc 2.27; VS Code's server needs ≥ 2.28",
     "Ubuntu 20.04+"),
    ({"glibc": "musl libc (x86_64)"}, "glibc", "no glibc (musl libc (x86_64))", "Debian- or Ubuntu-based"),
    ({"home_writable": "no"}, "home writable", "cannot create a file in /home/dev",
     "`devagent up pytorch-dev --recreate`"),
    ({"tmp_exec": "no"}, "/tmp allows executing", "did not run (mounted noexec?)", "without noexec"),
    ({"tmp_exec": "unwritable"}, "/tmp allows executing", "cannot create a file in /tmp", "chmod 1777 /tmp"),
    ({"home_df": "overlay 10 9 524288 99% /"}, "free disk in home", "only 0.5 GiB free in /home/dev",
     "docker system df"),
    ({"workspace_df": "/dev/sdb 10 9 1048575 99% /w"}, "free disk in the workspace", "only 1.0 GiB free",
     "/srv/ana/code"),
    ({"workspace_df": ""}, "free disk in the workspace", "df gave no figure", "/srv/ana/code"),
    ({"agent_pid": ""}, "agent", "the agent's process is not running", "docker logs pytorch-dev"),
    ({"agent_state": "no"}, "agent", "has not written ~/.cache/devagent/agent.json", "--recreate"),
    ({"notebook_writable": "no"}, "notebook writable", "/home/dev/workspace/lab-notebook.md cannot be written by dev",
     "chown -R 1000 /srv/ana/code"),
])
def test_each_container_check_fails_with_a_concrete_fix(changes: dict[str, str], name: str, detail: str,
                                                        fix: str) -> None:
    check = by_name(d.container_checks(probe(**changes), ENV))[name]
    assert check.ok is False
    assert detail in check.detail
    assert check.fix is not None and fix in check.fix
    others = [c for c in d.container_checks(probe(**changes), ENV) if c.name != name]
    assert all(c.ok for c in others)


def test_a_login_that_lands_as_root_fails() -> None:
    check = d.login_check(probe(uid="0", user="root"), name=NAME)
    assert (check.ok, check.detail) == (False, "ssh pytorch-dev landed as root")


@pytest.mark.parametrize(("text", "version"), [
    ("glibc 2.36", (2, 36)),
    ("glibc 2.28", (2, 28)),
    ("ldd (Debian GLIBC 2.36-9+deb12u4) 2.36", (2, 36)),
    ("ldd (GNU libc) 2.17", (2, 17)),
    ("ldd (Ubuntu GLIBC 2.27-3ubuntu1.6) 2.27", (2, 27)),
    ("musl libc (x86_64)", None),
    ("", None),
])
def test_the_glibc_version_is_read_from_getconf_or_ldd(text: str, version: tuple[int, int] | None) -> None:
    assert d.glibc_version(text) == version


def test_glibc_versions_compare_as_numbers_not_text() -> None:
    assert by_name(d.container_checks(probe(glibc="glibc 2.28"), ENV))["glibc"].ok
    assert by_name(d.container_checks(probe(glibc="glibc 2.100"), ENV))["glibc"].ok
    assert not by_name(d.container_checks(probe(glibc="glibc 2.3"), ENV))["glibc"].ok
    assert not by_name(d.container_checks(probe(glibc="glibc 1.99"), ENV))["glibc"].ok


def test_the_probe_is_posix_sh_and_reports_every_key_on_this_machine(tmp_path: Path) -> None:
    home = tmp_path / "probe-home"
    home.mkdir()
    sh = "/bin/sh"  # dash on Debian: no bash-isms pass
    assert subprocess.run([sh, "-n"], input=d.PROBE_SCRIPT, text=True, check=False).returncode == 0
    out = subprocess.run([sh, "-s"], input=d.PROBE_SCRIPT, capture_output=True, text=True, check=True,
                         env={**os.environ, "HOME": str(home), "DEVAGENT_WORKSPACE": str(home)}, timeout=30)
    values = d.parse_probe(out.stdout)
    assert set(values) == set(d.PROBE_KEYS), out.stdout
    assert values["home_writable"] == "yes" and values["tmp_exec"] == "yes"
    assert values["agent_state"] == "no"  # no agent ran in this HOME
    assert values["notebook"] == f"{home}/lab-notebook.md" and values["notebook_writable"] == "yes"
    assert list(home.iterdir()) == []  # the probe leaves nothing behind


def test_the_probe_finds_the_agents_record_where_the_agent_writes_it(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    from devagent.inside.locations import record_agent

    monkeypatch.setenv("HOME", str(tmp_path))
    record_agent(tmp_path / "workspace", tmp_path / "workspace" / "lab-notebook.md")
    out = subprocess.run(["/bin/sh", "-s"], input=d.PROBE_SCRIPT, capture_output=True, text=True, check=True,
                         env={**os.environ, "HOME": str(tmp_path)}, timeout=30)
    assert d.parse_probe(out.stdout)["agent_state"] == "yes"


# -- JSONC (VS Code's settings.json) ----------------------------------------------------------------------------


def test_jsonc_comments_and_trailing_commas_go_but_comment_like_text_in_strings_stays() -> None:
    text = """{
      // the ssh config
      "remote.SSH.configFile": "/home/ana/.ssh/config", /* block
      comment */ "url": "http://example.invalid/a//b",
      "glob": "/* not a comment */",
      "quote": "a \\"// still\\" string",
      "backslash": "C:\\\\",   // ends with a backslash
      "list": [1, 2, ],
    }"""
    assert json.loads(d.strip_jsonc(text)) == {
        "remote.SSH.configFile": "/home/ana/.ssh/config", "url": "http://example.invalid/a//b",
        "glob": "/* not a comment */", "quote": 'a "// still" string', "backslash": "C:\\", "list": [1, 2]}


def test_jsonc_leaves_a_comma_inside_a_string_before_a_brace_alone() -> None:
    assert json.loads(d.strip_jsonc('{"a": ", }", "b": [", ]"],}')) == {"a": ", }", "b": [", ]"]}


# -- VS Code's remote.SSH.configFile ----------------------------------------------------------------------------


def _vscode(setting: object, *, user_config: str = "/h/.ssh/config") -> Check:
    settings = {} if setting is None else {"remote.SSH.configFile": setting}
    return d.vscode_config_file_check(label="VS Code", settings_file="/h/settings.json", settings=settings,
                                      user_config=user_config, default_config="/h/.ssh/config", home="/h")


def test_the_vscode_setting_passes_unset_or_pointing_at_the_users_ssh_config() -> None:
    assert _vscode(None).ok
    assert _vscode("/h/.ssh/config").ok
    assert _vscode("~/.ssh/config").ok
    assert _vscode("/h/.ssh/../.ssh/config").ok


def test_the_vscode_setting_fails_when_it_names_another_file_or_devagents_config_is_elsewhere() -> None:
    other = _vscode("/h/work/ssh_config")
    assert other.ok is False
    assert other.detail == ("/h/work/ssh_config in /h/settings.json, so Remote-SSH does not read /h/.ssh/config, "
                            "where devagent's Include is")
    assert other.fix == ('set "remote.SSH.configFile": "/h/.ssh/config" in /h/settings.json '
                         "(or delete the setting)")
    moved = _vscode(None, user_config="/h/cfg/ssh")
    assert moved.ok is False and moved.fix == 'set "remote.SSH.configFile": "/h/cfg/ssh" in /h/settings.json'
    assert _vscode(42).ok is False


def test_the_doctor_shows_dockers_verdict_with_the_reason_and_a_fix() -> None:
    assert health_check("healthy", "ok", name="dev") == Check(HEALTH, True,
                                                             "healthy: sshd listens and the agent reports")
    assert health_check("unhealthy", "sshd does not listen on port 2222", name="dev") == Check(
        HEALTH, False, "unhealthy: sshd does not listen on port 2222",
        fix="`docker logs dev` shows what the agent and sshd said; `devagent up dev --recreate` starts a fresh "
        "container")
    assert health_check("starting", "", name="dev") == Check(
        HEALTH, None, "Docker has not checked it yet (the first check runs 30 s after the start)")
    assert health_check(None, "", name="dev") == Check(
        HEALTH, None, "the container has no health check (an older devagent made it); `devagent up dev "
        "--recreate` adds one")


class TestADownloadTool:
    """Remote-SSH's setup script downloads VS Code's server inside with curl or wget; devagent-base:bookworm had
    neither, and VSCodium's open-remote-ssh stopped at "no tool to download server binary" while doctor passed."""

    def test_curl_or_wget_passes(self) -> None:
        check = by_name(d.container_checks(probe(download="/usr/bin/wget"), ENV))["download tool"]
        assert (check.ok, check.detail) == (
            True, "/usr/bin/wget (Remote-SSH's setup script downloads VS Code's server with it)")

    def test_neither_is_a_warning_that_says_what_each_client_does(self) -> None:
        checks = d.container_checks(probe(download=""), ENV)
        check = by_name(checks)["download tool"]
        assert (check.ok, check.warning) == (None, True)
        assert d.render([check]) == [
            "! download tool — neither curl nor wget in the image: Microsoft's Remote-SSH downloads VS Code's server "
            "on your machine and copies it over (that works); VSCodium's open-remote-ssh stops with \"no tool to "
            "download server binary\"",
            "  fix: for VSCodium, use a base image with curl or wget: `devagent up pytorch-dev --recreate "
            "--base-image IMAGE` (devagent's own base images carry curl once rebuilt)"]
        assert d.passed(checks)  # a warning: doctor still exits 0


def test_the_offline_base_image_script_installs_curl() -> None:
    from pathlib import Path

    script = (Path(__file__).parents[2] / "scripts" / "build-base-image.sh").read_text()
    [include] = [line for line in script.splitlines() if "--include=" in line]
    assert "curl" in include.split("--include=")[1].split()[0].split(",")


# -- every container check word for word -----------------------------------------------------------------------

REBASE = "`devagent up pytorch-dev --recreate --base-image IMAGE`"
AGAIN = ("run `devagent doctor pytorch-dev` again; if it persists, log in with `ssh pytorch-dev` and look for errors "
         "from its shell")
DOCKER_DISK = ("free space where Docker keeps its containers (`docker system df` shows what uses it, "
               "`docker system prune` removes what is unused)")


def test_a_healthy_probe_passes_every_container_check_with_what_it_saw() -> None:
    assert d.container_checks(d.parse_probe(HEALTHY_PROBE), d.Environment(NAME)) == [
        Check("bash", True, "/usr/bin/bash"),
        Check("tar", True, "tar (GNU tar) 1.34"),
        Check("download tool", True, "/usr/bin/curl (Remote-SSH's setup script downloads VS Code's server with it)"),
        Check("glibc", True, "2.36 (VS Code's server needs ≥ 2.28)"),
        Check("home writable", True, "/home/dev (VS Code installs its server in ~/.vscode-server)"),
        Check("/tmp allows executing", True, "a script written to /tmp ran"),
        Check("free disk in home", True, "76.3 GiB free in /home/dev"),
        Check("free disk in the workspace", True, "76.3 GiB free in /home/dev/workspace"),
        Check("agent", True, "running (pid 7), state in ~/.cache/devagent/agent.json"),
        Check("notebook writable", True, "/home/dev/workspace/lab-notebook.md"),
    ]


def test_a_broken_image_fails_every_container_check_each_with_its_fix() -> None:
    broken = {"bash": "", "tar": "", "download": "", "glibc": "", "home_writable": "no", "tmp_exec": "unwritable",
              "home_df": "df: /home/dev: no such file", "workspace_df": "overlay 1 1 1048575 99% /w",
              "agent_state": "no", "agent_pid": "", "notebook_writable": "no"}
    assert d.container_checks(broken, d.Environment(NAME)) == [
        Check("bash", False, "no bash in the image; Remote-SSH runs its server's install script with bash",
              fix=f"use a base image that has bash (Debian and Ubuntu images do): {REBASE}"),
        Check("tar", False, "no tar in the image; Remote-SSH unpacks its server with tar",
              fix=f"use a base image that has tar (devagent does not install it; Debian and Ubuntu images have it): "
              f"{REBASE}"),
        d.warning("download tool", "neither curl nor wget in the image: Microsoft's Remote-SSH downloads VS Code's "
                  "server on your machine and copies it over (that works); VSCodium's open-remote-ssh stops with "
                  '"no tool to download server binary"', f"for VSCodium, use a base image with curl or wget: {REBASE} "
                  "(devagent's own base images carry curl once rebuilt)"),
        Check("glibc", False, "no glibc (nothing reported); VS Code's server needs glibc ≥ 2.28 (musl, as in Alpine, "
              "does not do)", fix=f"use a Debian- or Ubuntu-based image: {REBASE}"),
        Check("home writable", False, "cannot create a file in ~; VS Code installs its server there",
              fix="a fresh container has a fresh home: `devagent up pytorch-dev --recreate` (free disk space first if "
              "it is full)"),
        Check("/tmp allows executing", False, "cannot create a file in /tmp",
              fix=f"make /tmp writable for everyone (chmod 1777 /tmp in the base image), then {REBASE}"),
        Check("free disk in home", False, "df gave no figure for ~: 'df: /home/dev: no such file'", fix=DOCKER_DISK),
        Check("free disk in the workspace", False, "only 1.0 GiB free in ~/workspace (warning: under 1 GiB)",
              fix="free space on the file system of the workspace folder (the host folder mounted at ~/workspace)"),
        Check("agent", False, "the agent's process is not running; the agent has not written "
              "~/.cache/devagent/agent.json",
              fix="`docker logs pytorch-dev` shows why; `devagent up pytorch-dev --recreate` starts a fresh container"),
        Check("notebook writable", False, "the notebook cannot be written by the login user",
              fix="on the host, give the workspace to the login user: chown -R UID WORKSPACE"),
    ]


def test_a_key_the_probe_did_not_report_fails_its_own_check() -> None:
    checks = d.container_checks({}, d.Environment(NAME))
    assert checks == [Check(name, False, f"the probe did not report {key}", fix=AGAIN) for name, key in [
        ("bash", "bash"), ("tar", "tar"), ("download tool", "download"), ("glibc", "glibc"),
        ("home writable", "home_writable"), ("/tmp allows executing", "tmp_exec"), ("free disk in home", "home_df"),
        ("free disk in the workspace", "workspace_df"), ("agent", "agent_state"),
        ("notebook writable", "notebook_writable")]]
    assert d.container_checks({"agent_state": "yes"}, d.Environment(NAME))[8] == Check(
        "agent", False, "the probe did not report agent_pid", fix=AGAIN)


@pytest.mark.parametrize(("line", "check"), [
    ("o 1 1 1048576 1% /w", Check("free disk in the workspace", True, "1.0 GiB free in /srv/ws/inside")),
    ("o 1 1 1048575 1% /w", Check("free disk in the workspace", False, "only 1.0 GiB free in /srv/ws/inside (warning: "
                                  "under 1 GiB)", fix="free space on the file system of /srv/ws (the host folder "
                                  "mounted at ~/workspace)")),
])
def test_one_gib_free_is_enough(line: str, check: Check) -> None:
    values = {"workspace_df": line, "workspace": "/srv/ws/inside"}
    assert d.container_checks(values, d.Environment(NAME, "/srv/ws"))[7] == check


def test_an_old_glibc_a_noexec_tmp_and_a_notebook_owned_by_another_uid_say_whom_to_fix() -> None:
    values = {"glibc": "ldd (Ubuntu GLIBC 2.27-3ubuntu1.6) 2.27", "tmp_exec": "no", "notebook_writable": "no",
              "notebook": "/w/nb.md", "uid": "1001", "user": "ana"}
    checks = d.container_checks(values, d.Environment(NAME, "/srv/ws"))
    assert checks[3] == Check("glibc", False, "glibc 2.27; VS Code's server needs ≥ 2.28",
                              fix=f"use a newer base image (Debian 10+, Ubuntu 20.04+): {REBASE}")
    assert checks[5] == Check("/tmp allows executing", False, "a script written to /tmp did not run (mounted noexec?); "
                              "VS Code's server runs helpers from there", fix="give the container a /tmp without "
                              "noexec (check the base image and the Docker daemon's options), then `devagent up "
                              "pytorch-dev --recreate`")
    assert checks[9] == Check("notebook writable", False, "/w/nb.md cannot be written by ana",
                              fix="on the host, give the workspace to the login user: chown -R 1001 /srv/ws")


def test_a_glibc_named_without_a_version_is_no_version() -> None:
    assert d.glibc_version("glibc (version unknown)") is None


LOGIN = "login through the alias"


@pytest.mark.parametrize(("values", "check"), [
    ({"uid": "1000", "user": "ana"}, Check(LOGIN, True, "ssh pytorch-dev logs in as ana (uid 1000)")),
    ({"uid": "1000"}, Check(LOGIN, True, "ssh pytorch-dev logs in as  (uid 1000)")),
    ({"uid": "0", "user": "root"}, Check(
        LOGIN, False, "ssh pytorch-dev landed as root",
        fix="`devagent up pytorch-dev --recreate` (devagent's sshd never lets root in)")),
    ({}, Check(LOGIN, False, "the probe did not report uid", fix=AGAIN)),
    ({"uid": "x"}, Check(LOGIN, False, "the probe did not report uid", fix=AGAIN)),
])
def test_the_login_is_judged_from_the_uid(values: dict[str, str], check: Check) -> None:
    assert d.login_check(values, name=NAME) == check


def test_an_unhealthy_container_that_printed_nothing_says_so() -> None:
    assert health_check("unhealthy", "", name=NAME).detail == "unhealthy: the check printed nothing"


def test_the_probes_lines_may_end_in_a_carriage_return_and_keep_their_spaces() -> None:
    assert d.parse_probe("devagent_probe=1\r\nuser=ana X\r\nhome=/h \r\n") == {"user": "ana X", "home": "/h "}


def test_a_warning_or_a_skipped_check_does_not_end_the_report_and_a_passed_check_shows_no_fix() -> None:
    checks = [d.warning("w", "maybe", "do this"), d.skipped("s", "not here"), Check("p", True, "fine", fix="unused"),
              Check("f", False, "broken")]
    assert d.render(checks) == ["! w — maybe", "  fix: do this", "– s — skipped: not here", "✔ p — fine",
                                "✘ f — broken"]


@pytest.mark.parametrize(("warned", "line"), [(1, "all 1 checks passed, 1 warning"),
                                              (2, "all 1 checks passed, 2 warnings")])
def test_warnings_are_counted_in_words(warned: int, line: str) -> None:
    assert d.summary([Check("a", True, ""), *[d.warning(f"w{i}", "", "x") for i in range(warned)]]) == line


SET_IT = 'set "remote.SSH.configFile": "/home/me/.devagent/ssh_config" in settings.json'


@pytest.mark.parametrize(("settings", "user_config", "check"), [
    ([], "/home/me/.ssh/config", d.skipped("local remote.SSH.configFile", "settings.json does not hold a JSON object")),
    ({}, "/home/me/.ssh/config", Check("local remote.SSH.configFile", True, "not set: Remote-SSH reads "
                                       "/home/me/.ssh/config, which includes devagent's config")),
    ({"remote.SSH.configFile": ""}, "/home/me/.ssh/config", Check(
        "local remote.SSH.configFile", True, "not set: Remote-SSH reads /home/me/.ssh/config, which includes "
        "devagent's config")),
    ({}, "/home/me/.devagent/ssh_config", Check(
        "local remote.SSH.configFile", False, "not set, so Remote-SSH reads /home/me/.ssh/config, but devagent's "
        "Include is in /home/me/.devagent/ssh_config (DEVAGENT_SSH_CONFIG)", fix=SET_IT)),
    ({"remote.SSH.configFile": 3}, "/home/me/.devagent/ssh_config", Check(
        "local remote.SSH.configFile", False, "remote.SSH.configFile in settings.json is not a path: 3", fix=SET_IT)),
    ({"remote.SSH.configFile": "~"}, "/home/me", Check("local remote.SSH.configFile", True,
                                                       "~, which includes devagent's config")),
    ({"remote.SSH.configFile": "/../home/me//.devagent/./ssh_config"}, "/home/me/.devagent/ssh_config", Check(
        "local remote.SSH.configFile", True, "/../home/me//.devagent/./ssh_config, which includes devagent's config")),
    ({"remote.SSH.configFile": "/etc/ssh/ssh_config"}, "/home/me/.devagent/ssh_config", Check(
        "local remote.SSH.configFile", False, "/etc/ssh/ssh_config in settings.json, so Remote-SSH does not read "
        "/home/me/.devagent/ssh_config, where devagent's Include is", fix=SET_IT)),
    ({"remote.SSH.configFile": "/etc/ssh/ssh_config"}, "/home/me/.ssh/config", Check(
        "local remote.SSH.configFile", False, "/etc/ssh/ssh_config in settings.json, so Remote-SSH does not read "
        "/home/me/.ssh/config, where devagent's Include is",
        fix='set "remote.SSH.configFile": "/home/me/.ssh/config" in settings.json (or delete the setting)')),
])
def test_each_remote_ssh_config_file_setting_word_for_word(settings: object, user_config: str, check: Check) -> None:
    assert d.vscode_config_file_check(label="local", settings_file="settings.json", settings=settings,
                                      user_config=user_config, default_config="/home/me/.ssh/config",
                                      home="/home/me") == check


@pytest.mark.parametrize(("mode", "problem"), [(0o600, False), (0o700, False), (0o640, True), (0o602, True)])
def test_a_mode_is_a_problem_when_it_gives_group_or_others_anything(mode: int, problem: bool) -> None:
    assert d.mode_problem(mode, forbidden=0o077) is problem
