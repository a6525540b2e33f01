"""`up`'s options: the command line over the workspace's devagent.toml over the defaults, merged without I/O into
the EnvSpec `up` provisions, and the launch line the notebook records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pytest

from devagent import cli
from devagent.cli import environments, site_options  # imported here: the package imports no command module
from devagent.core import spec as s
from devagent.core.config import UpConfig
from devagent.core.up_request import DEFAULTS, UpRequest, up_request
from devagent.errors import DevagentError, ExitStatus

CONFIG = "/w/devagent.toml"


def request(given: Mapping[str, object] | None = None, config_text: str | None = None, *, name: str | None = "exp",
            uid: int = 1000, client_profile: str = "strict", argv: Sequence[str] = ()) -> UpRequest:
    return up_request(name=name, given=given or {}, config_text=config_text, config_path=CONFIG, workspace="/w",
                      uid=uid, client_profile=client_profile, argv=argv)


def usage_error(given: Mapping[str, object] | None = None, config_text: str | None = None, **kwargs: Any
                ) -> DevagentError:
    with pytest.raises(DevagentError) as err:
        request(given, config_text, **kwargs)
    assert err.value.status == ExitStatus.USAGE
    return err.value


class TestPrecedence:
    def test_a_flag_wins_over_the_file(self) -> None:
        spec = request({"memory": "64g", "gpus": "0", "watch": ("a.py",), "sshd_profile": "strict"},
                       'memory = "32g"\ngpus = "all"\nsshd_profile = "compat"\n[agent]\nwatch = ["b.py"]\n').spec
        assert spec.limits.memory == 64 * 1024**3
        assert spec.gpus == s.GpuRequest("list", ("0",))
        assert spec.agent.watch == ("a.py",)
        assert spec.sshd_profile == "strict"

    def test_a_flag_wins_even_when_it_repeats_a_default(self) -> None:
        assert request({"gpus": "none"}, 'gpus = "all"\n').spec.gpus == s.GpuRequest("none")

    def test_share_gpus_is_taken_from_the_flag_and_is_off_without_it(self) -> None:
        assert request({"share_gpus": True}).spec.share_gpus is True
        assert request().spec.share_gpus is False

    def test_a_typed_watch_glob_is_checked_here(self) -> None:
        # devagent.toml's globs were checked as it was read; --watch's are checked by up_request itself.
        assert usage_error({"watch": ("src/*.py", "/a.py")}).message == (
            "--watch: the glob '/a.py' starts with '/' and can never match")

    def test_the_file_wins_over_the_defaults(self) -> None:
        made = request({}, 'base_image = "img:1"\nuser = "alice"\ngpus = [0, 1]\nmemory = "32g"\ncpus = 4\n'
                       'shm_size = "8g"\npids = 8192\nsshd_profile = "compat"\nvscode = true\n'
                       '[agent]\nnotebook = "notes/nb.md"\nwatch = ["src/*.py"]\npoll_saves = true\n')
        assert made.spec == s.EnvSpec(
            name="exp", base_image="img:1", workspace="/w", user="alice", uid=1000,
            gpus=s.GpuRequest("list", ("0", "1")),
            limits=s.Limits(memory=32 * 1024**3, cpus=4.0, shm_size=8 * 1024**3, pids=8192), sshd_profile="compat",
            agent=s.AgentOptions(notebook="notes/nb.md", watch=("src/*.py",), polling=True))
        assert made.vscode is True

    def test_without_flags_or_file_the_defaults_apply(self) -> None:
        made = request({}, None, client_profile="compat")
        assert made.spec == s.EnvSpec(name="exp", base_image=s.DEFAULT_BASE_IMAGE, workspace="/w", user="dev",
                                      uid=1000, gpus=s.GpuRequest("none"), limits=s.Limits(cpus=None),
                                      sshd_profile="compat", agent=s.AgentOptions())
        assert made.vscode is False

    def test_the_name_argument_wins_over_the_files_name(self) -> None:
        assert request({}, 'name = "from-file"\n', name="typed").spec.name == "typed"
        assert request({}, 'name = "from-file"\n', name=None).spec.name == "from-file"

    def test_root_runs_as_uid_1000_inside(self) -> None:
        assert request(uid=0).spec.uid == 1000
        assert request(uid=1234).spec.uid == 1234

    def test_the_defaults_are_the_ones_up_shows_in_its_help(self) -> None:
        options = {p.name: p.default for p in environments.up.params if isinstance(p, click.Option)}
        settings = {f for f in UpConfig.__dataclass_fields__ if f != "name"}
        assert {key: options[key] for key in settings if isinstance(options[key], str)} == DEFAULTS


class TestErrors:
    def test_no_name_anywhere_is_a_usage_error_naming_the_file(self) -> None:
        err = usage_error({}, 'memory = "32g"\n', name=None)
        assert err.message == "no environment name"
        assert err.hint == 'give one (devagent up NAME) or set name = "..." in /w/devagent.toml'

    @pytest.mark.parametrize(("text", "message", "hint"), [
        ('name = "x"\nmemory = "lots"\n', "/w/devagent.toml line 2: memory = \"lots\": cannot read size 'lots'",
         'write a number and a unit b, k, m or g, e.g. memory = "8g"'),
        ('\n\nname = "Bad"\n', "/w/devagent.toml line 3: name = \"Bad\": invalid environment name 'Bad'",
         "use 1-63 characters: lowercase letters, digits, '_', '.', '-', starting with a letter or digit"),
        ('[agent]\nnotebook = "/etc/passwd"\n',
         "/w/devagent.toml line 2: notebook = \"/etc/passwd\": '/etc/passwd' must be a path inside the workspace",
         'e.g. notebook = "notes/lab-notebook.md"'),
    ])
    def test_a_bad_value_in_the_file_names_the_file_and_the_line(self, text: str, message: str, hint: str) -> None:
        err = usage_error({}, text)
        assert (err.message, err.hint) == (message, hint)

    def test_a_cloned_repositorys_file_cannot_name_the_environment_after_a_real_host(self) -> None:
        err = usage_error({}, '# from someone else\nname = "github.com"\n', name=None)
        assert err.message == ("/w/devagent.toml line 2: name = \"github.com\": environment name 'github.com' is a "
                               "DNS name: its ssh alias would take `ssh github.com` over")
        assert err.hint == "pick a name ssh does not read as a host, e.g. github-com"

    def test_nor_can_the_name_typed(self) -> None:
        assert usage_error({}, None, name="10.1.2.3").message == (
            "environment name '10.1.2.3' is an IPv4 address: its ssh alias would take `ssh 10.1.2.3` over")

    def test_the_file_is_checked_even_when_a_flag_overrides_the_bad_key(self) -> None:
        assert usage_error({"memory": "8g"}, 'memory = "lots"\n').message.startswith("/w/devagent.toml line 1:")

    @pytest.mark.parametrize(("given", "message"), [
        ({"memory": "lots"}, "--memory: cannot read size 'lots'"),
        ({"shm_size": "0"}, "--shm-size: size must be positive, not '0'"),
        ({"gpus": "first"}, "--gpus: not a GPU index or UUID: first"),
        ({"cpus": "many"}, "--cpus: 'many' is not a positive number"),
        ({"pids": "10"}, "--pids: '10' is not a whole number of at least 64"),
        ({"user": "root"}, "invalid login user 'root'"),
        ({"notebook": "../nb.md"}, "--notebook '../nb.md' must be a path inside the workspace"),
    ])
    def test_a_bad_flag_names_the_option(self, given: Mapping[str, object], message: str) -> None:
        assert usage_error(given).message == message


class TestTheLaunchLine:
    def test_it_is_the_command_as_typed(self) -> None:
        argv = ["up", "exp", "--memory", "32g", "--workspace", "my code"]
        assert request(argv=argv).launch_command == "devagent up exp --memory 32g --workspace 'my code'"

    def test_it_names_the_file_that_gave_the_other_options(self) -> None:
        assert request(config_text='memory = "32g"\n', argv=["up"]).launch_command == (
            "devagent up  # with devagent.toml")

    def test_when_up_was_not_the_command_typed_it_is_one_that_makes_the_same_environment(self) -> None:
        assert request(argv=["-m", "pytest"]).launch_command == "devagent up exp"
        assert request(argv=()).launch_command == "devagent up exp"


class RecordingProvisioner:
    """Stands in for control/lifecycle/provision.py's Provisioner: records what `up` asked for, makes nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[s.EnvSpec, str]] = []

    def up(self, spec: s.EnvSpec, *, identity: Path | None, recreate: bool, launch_command: str,
           as_made: bool = False) -> object:
        from devagent.control.lifecycle.provision import UpResult

        self.calls.append((spec, launch_command))
        return UpResult(name=spec.name, image="img", image_built=False, port=40000, user=spec.user, uid=1000,
                        created=True, recreated=False, workspace=spec.workspace)


def test_the_cli_records_the_arguments_main_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fake = RecordingProvisioner()
    monkeypatch.setattr(site_options, "provisioner", lambda _site: fake)
    monkeypatch.setattr("sys.argv", ["pytest", "something", "else"])  # never read: main's argv is
    (tmp_path / "devagent.toml").write_text('memory = "32g"\npids = 512\n')
    argv = ["up", "exp", "--workspace", str(tmp_path), "--pids", "1024"]
    assert cli.main(argv) == 0
    [(spec, launch)] = fake.calls
    assert launch == f"devagent up exp --workspace {tmp_path} --pids 1024  # with devagent.toml"
    assert (spec.limits.memory, spec.limits.pids, spec.workspace) == (32 * 1024**3, 1024, str(tmp_path))
    assert "✔ container exp created, sshd on 127.0.0.1:40000\n" in capsys.readouterr().out


def test_the_cli_reports_a_missing_name_with_the_files_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    assert cli.main(["up", "--workspace", str(tmp_path)]) == ExitStatus.USAGE
    assert capsys.readouterr().err == (
        "Error: no environment name\n"
        f'  hint: give one (devagent up NAME) or set name = "..." in {tmp_path / "devagent.toml"}\n')


class TestTheServer:
    """--host over DEVAGENT_HOST over the file's host; none of them: this machine's engine, workspace as today."""

    def remote(self, given: Mapping[str, object] | None = None, config_text: str | None = None, *,
               env_host: str | None = None, server_workspace: str | None = None) -> UpRequest:
        return up_request(name="exp", given=given or {}, config_text=config_text, config_path=CONFIG,
                          workspace="/w", uid=0, client_profile="strict", argv=(), env_host=env_host,
                          server_workspace=server_workspace)

    def test_no_host_anywhere_is_the_local_engine_with_the_local_workspace(self) -> None:
        made = self.remote(server_workspace="./code")
        assert (made.host, made.spec.workspace) == (None, "/w")

    @pytest.mark.parametrize(("given", "env_host", "file", "host"), [
        ({"host": "flag-server"}, "env-server", 'host = "file-server"\n', "flag-server"),
        ({}, "env-server", 'host = "file-server"\n', "env-server"),
        ({}, None, 'host = "file-server"\n', "file-server"),
        ({}, "", 'host = "file-server"\n', "file-server"),  # an empty DEVAGENT_HOST counts as unset
        ({"host": "alice@gpu:2222"}, None, None, "alice@gpu:2222"),
    ])
    def test_the_flag_wins_over_the_environment_which_wins_over_the_file(
            self, given: Mapping[str, object], env_host: str | None, file: str | None, host: str) -> None:
        made = self.remote(given, file, env_host=env_host)
        assert made.host == host
        assert made.host_from_file == (host == "file-server")  # only then must the user agree to it

    def test_local_is_this_machines_engine_whatever_the_environment_and_the_file_say(self) -> None:
        made = up_request(name="exp", given={}, config_text='host = "file-server"\n', config_path=CONFIG,
                          workspace="/w", uid=0, client_profile="strict", argv=(), env_host="env-server",
                          server_workspace="./code", local=True)
        assert (made.host, made.spec.workspace) == (None, "/w")

    def test_local_and_host_together_are_refused_before_anything_runs(
            self, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["up", "exp", "--local", "--host", "gpu"]) == ExitStatus.USAGE
        assert capsys.readouterr().err == (
            "Error: --local and --host name two different engines\n"
            "  hint: keep one: --host SERVER for a server's engine, --local for this machine's\n")

    def test_on_a_server_the_workspace_is_the_one_typed_or_devagent_NAME_in_the_server_home(self) -> None:
        assert self.remote({"host": "gpu"}).spec.workspace == "~/devagent/exp"
        assert self.remote({"host": "gpu"}, server_workspace="code/x").spec.workspace == "code/x"
        assert self.remote({"host": "gpu"}, server_workspace="/srv/x").spec.workspace == "/srv/x"

    @pytest.mark.parametrize("hostile", ["-oProxyCommand=touch /tmp/x", "gpu;id", "gpu server", "gpu\nHost *",
                                         "$(id)", "gpu,evil"])
    def test_a_hostile_host_is_refused_from_the_flag_the_environment_and_the_file(self, hostile: str) -> None:
        for kwargs in ({"given": {"host": hostile}}, {"env_host": hostile}):
            with pytest.raises(DevagentError) as err:
                self.remote(**kwargs)  # type: ignore[arg-type]
            assert err.value.status == ExitStatus.USAGE
            assert err.value.message.startswith(f"server {hostile!r} is not usable: ")
        escaped = hostile.replace("\n", "\\n")
        with pytest.raises(DevagentError) as err:
            self.remote(config_text=f'host = "{escaped}"\n')
        assert err.value.status == ExitStatus.USAGE
        assert err.value.message.startswith("/w/devagent.toml line 1: host = ")

    def test_a_workspace_path_with_a_line_break_is_refused(self) -> None:
        with pytest.raises(DevagentError) as err:
            self.remote({"host": "gpu"}, server_workspace="a\nb")
        assert (err.value.message, err.value.status) == ("workspace 'a\\nb' is not a usable path on the server",
                                                         ExitStatus.USAGE)
        assert err.value.hint == "pass --workspace a folder on the server: absolute, or relative to your home there"

    @pytest.mark.parametrize("typed", ["a\x1fb", "a\x7fb", "  "])
    def test_a_workspace_path_with_a_control_character_or_only_spaces_is_refused(self, typed: str) -> None:
        with pytest.raises(DevagentError) as err:
            self.remote({"host": "gpu"}, server_workspace=typed)
        assert err.value.message == f"workspace {typed!r} is not a usable path on the server"

    def test_a_workspace_path_with_a_space_or_the_last_ascii_character_is_kept(self) -> None:
        assert self.remote({"host": "gpu"}, server_workspace="my code/~x").spec.workspace == "my code/~x"


class TestTeamImage:
    REF = "reg.local:5000/team/env:v1"

    def test_image_from_the_flag_or_the_file_becomes_the_specs_image(self) -> None:
        assert request({"image": self.REF}).spec.image == self.REF
        assert request(config_text=f'image = "{self.REF}"\n').spec.image == self.REF
        assert request().spec.image is None

    def test_a_typed_image_beats_the_files_base_image_and_a_typed_base_beats_the_files_image(self) -> None:
        typed_image = request({"image": self.REF}, 'base_image = "debian:12"\n').spec
        assert typed_image.image == self.REF and typed_image.base_image == s.DEFAULT_BASE_IMAGE
        typed_base = request({"base_image": "debian:12"}, f'image = "{self.REF}"\n').spec
        assert typed_base.image is None and typed_base.base_image == "debian:12"

    def test_both_typed_or_both_in_the_file_is_a_usage_error(self) -> None:
        err = usage_error({"image": self.REF, "base_image": "debian:12"})
        assert err.message == ("both an image and a base image are set on the command line: a team image is "
                               "started as it is, not derived from a base")
        assert err.hint == ("keep one: --image (image =) for a pushed devagent image, --base-image (base_image =) "
                            "to build from a base")
        err = usage_error(config_text=f'image = "{self.REF}"\nbase_image = "debian:12"\n')
        assert err.message.startswith(f"both an image and a base image are set in {CONFIG}")

    def test_a_malformed_reference_is_a_usage_error_that_shows_the_form(self) -> None:
        err = usage_error({"image": "Team/Env:v1"})
        assert err.message == "--image: 'Team/Env:v1' is not an image reference"
        err = usage_error(config_text='image = "x@sha256:short"\n')
        assert "image: 'x@sha256:short' is not an image reference" in err.message


class TestSizes:
    """`memory = 2` in devagent.toml was taken as 2 bytes and `--memory 1k` as 1 KiB: `up` got as far as creating
    the container before the Docker Engine refused, naming no file or line. A size needs its unit and a minimum,
    checked before anything is made."""

    @pytest.mark.parametrize(("text", "message", "hint"), [
        ('name = "x"\nmemory = 2\n', "/w/devagent.toml line 2: memory = 2: size '2' has no unit (to Docker, a "
         "bare number is bytes)", 'write the unit b, k, m or g after the number, e.g. memory = "2g"'),
        ('name = "x"\n\nshm_size = "512"\n', "/w/devagent.toml line 3: shm_size = \"512\": size '512' has no unit "
         "(to Docker, a bare number is bytes)", 'write the unit b, k, m or g after the number, e.g. shm_size = "512g"'),
        ('name = "x"\nmemory = "5m"\n', "/w/devagent.toml line 2: memory = \"5m\": size '5m' is below the minimum, "
         "6m", 'e.g. memory = "8g"'),
        ('shm_size = "64k"\nname = "x"\n', "/w/devagent.toml line 1: shm_size = \"64k\": size '64k' is below the "
         "minimum, 1m", 'e.g. shm_size = "8g"'),
    ])
    def test_in_the_file_a_bare_number_or_a_tiny_size_names_the_file_and_line(self, text: str, message: str,
                                                                              hint: str) -> None:
        err = usage_error({}, text)
        assert (err.message, err.hint) == (message, hint)

    @pytest.mark.parametrize(("given", "message", "hint"), [
        ({"memory": "1k"}, "--memory: size '1k' is below the minimum, 6m", "e.g. --memory 8g"),
        ({"memory": "2"}, "--memory: size '2' has no unit (to Docker, a bare number is bytes)",
         "write the unit b, k, m or g after the number, e.g. --memory 2g"),
        ({"shm_size": "100b"}, "--shm-size: size '100b' is below the minimum, 1m", "e.g. --shm-size 8g"),
    ])
    def test_on_the_command_line_too(self, given: dict[str, object], message: str, hint: str) -> None:
        err = usage_error(given, None)
        assert (err.message, err.hint) == (message, hint)

    def test_the_minimums_and_units_are_accepted(self) -> None:
        limits = request({"memory": "6m", "shm_size": "1048576b"}).spec.limits
        assert (limits.memory, limits.shm_size) == (6 * 1024**2, 1024**2)


def test_the_cli_refuses_a_unitless_memory_in_the_file_before_anything_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = RecordingProvisioner()
    monkeypatch.setattr(site_options, "provisioner", lambda _site: fake)
    (tmp_path / "devagent.toml").write_text('name = "exp"\nmemory = 2\n')
    assert cli.main(["up", "--workspace", str(tmp_path)]) == ExitStatus.USAGE
    assert capsys.readouterr().err == (
        f"Error: {tmp_path / 'devagent.toml'} line 2: memory = 2: size '2' has no unit (to Docker, a bare number "
        "is bytes)\n"
        '  hint: write the unit b, k, m or g after the number, e.g. memory = "2g"\n')
    assert fake.calls == []


@pytest.mark.parametrize(("created", "built", "line"), [
    (True, False, "✔ image img (cached)\n"), (True, True, "✔ image img (built)\n"), (False, False, "✔ image img\n")])
def test_the_image_line_says_built_or_cached_for_a_new_container(
        created: bool, built: bool, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A cached image was said on stderr only: the ✔ line showed neither (built) nor (cached)."""
    import dataclasses

    fake = RecordingProvisioner()
    made = fake.up

    def up(spec: s.EnvSpec, **kwargs: Any) -> object:
        return dataclasses.replace(made(spec, **kwargs), created=created, image_built=built)  # type: ignore[type-var]

    monkeypatch.setattr(fake, "up", up)
    monkeypatch.setattr(site_options, "provisioner", lambda _site: fake)
    assert cli.main(["up", "exp", "--workspace", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(line)


class TestDevcontainerLayer:
    """The workspace's devcontainer.json lies under devagent.toml: flags > devagent.toml > devcontainer.json >
    defaults, and `up` says what of the file was used and what was not."""

    @staticmethod
    def layer(text: str) -> Any:
        from devagent.core.devcontainer.config_file import map_config, read_configuration
        from devagent.core.up_request import DevcontainerLayer

        config = read_configuration(text, source=".devcontainer/devcontainer.json", local_workspace="/w",
                                    container_workspace="/home/dev/workspace", env={})
        return DevcontainerLayer(".devcontainer/devcontainer.json", "0123456789abcdef" * 4,
                                 map_config(config, source=".devcontainer/devcontainer.json"))

    def made(self, text: str, given: Mapping[str, object] | None = None, config_text: str | None = None
             ) -> UpRequest:
        return up_request(name="exp", given=given or {}, config_text=config_text, config_path=CONFIG,
                          workspace="/w", uid=1000, client_profile="strict", argv=["up", "exp"],
                          devcontainer=self.layer(text))

    FILE = ('{"image": "devagent-base:bookworm", "remoteUser": "alice", "runArgs": ["--gpus", "all", "--shm-size",'
            ' "4g"], "hostRequirements": {"memory": "24gb", "cpus": 4}, "containerEnv": {"A": "1"},'
            ' "postCreateCommand": "make", "name": "x"}')

    def test_forward_ports_go_into_the_spec_and_are_named(self) -> None:
        made = self.made('{"image": "i:1", "forwardPorts": [8888, "db:5432", 6006]}')
        assert made.spec.forward_ports == (8888, 6006)
        assert made.devcontainer == (
            "devcontainer .devcontainer/devcontainer.json (sha256 0123456789abcdef): used forwardPorts, "
            "base image i:1",
            "  forwardPorts 8888, 6006: `devagent forward NAME` with no port forwards them",
            "  ignored (no devagent meaning): forwardPorts 'db:5432'",
        )

    def test_the_file_fills_what_nothing_else_sets(self) -> None:
        made = self.made(self.FILE)
        spec = made.spec
        assert (spec.base_image, spec.user, spec.gpus.mode) == ("devagent-base:bookworm", "alice", "all")
        assert (spec.limits.memory, spec.limits.shm_size, spec.limits.cpus) == (24 * 1024**3, 4 * 1024**3, 4.0)
        assert made.devcontainer == (
            "devcontainer .devcontainer/devcontainer.json (sha256 0123456789abcdef): used containerEnv, gpus all, "
            "shm size 4g, cpus 4, memory 24g, user alice, base image devagent-base:bookworm",
            "  run in the environment as the login user: postCreateCommand",
            "  ignored (no devagent meaning): name",
        )
        assert [c.line for c in made.commands] == ["make"]
        assert (spec.container_env, spec.remote_env) == ((("A", "1"),), ())
        assert made.launch_command == ("devagent up exp  # with .devcontainer/devcontainer.json "
                                       "(sha256 0123456789abcdef)")

    def test_flags_and_devagent_toml_win_and_up_says_so(self) -> None:
        made = self.made(self.FILE, given={"memory": "64g"}, config_text='gpus = "none"\nbase_image = "img:2"\n')
        assert made.spec.limits.memory == 64 * 1024**3
        assert made.spec.gpus.mode == "none"
        assert made.spec.base_image == "img:2"
        assert made.spec.limits.shm_size == 4 * 1024**3
        assert made.devcontainer[1] == ("  not used: gpus all (devagent.toml sets it), memory 24g (--memory is "
                                        "typed), base image devagent-base:bookworm (devagent.toml sets it)")

    def test_an_optional_gpu_is_asked_of_the_ledger_only_when_nothing_sets_the_gpus(self) -> None:
        optional = '{"image": "i", "hostRequirements": {"gpu": "optional"}}'
        assert self.made(optional).gpu_optional
        typed = self.made(optional, given={"gpus": "0"})
        assert not typed.gpu_optional
        assert typed.devcontainer[-1] == ('  hostRequirements.gpu "optional": not used (--gpus or devagent.toml '
                                          "sets the GPUs)")
        assert not self.made(optional, config_text='gpus = "none"\n').gpu_optional

    def test_in_a_slurm_job_an_optional_gpu_takes_none_of_the_node_s_engine(self) -> None:
        # The job's GPUs are the environment's: the ledger of the node's engine is never asked for one more.
        optional = '{"image": "i", "hostRequirements": {"gpu": "optional"}}'
        made = self.made(optional, given={"host": "hpc-login", "slurm": "gpu", "time": "10"})
        assert made.slurm is not None and not made.gpu_optional
        assert made.devcontainer[:-1] == self.made(optional).devcontainer[:-1]  # only that line differs
        assert made.devcontainer[-1] == ('  hostRequirements.gpu "optional": not used (in a Slurm job the job\'s '
                                         "GPUs are the environment's: --gpus N)")

    def test_a_team_image_beats_the_file_s_image(self) -> None:
        made = self.made('{"image": "devagent-base:bookworm"}', given={"image": "registry.example/team/env:1"})
        assert made.spec.image == "registry.example/team/env:1"
        assert made.spec.base_image == s.DEFAULT_BASE_IMAGE

    def test_a_dockerfile_build_is_the_base_image_unless_one_is_typed(self) -> None:
        from devagent.core.devcontainer.config_file import Build
        from devagent.core.up_request import BUILD_PLACEHOLDER

        made = self.made('{"build": {"dockerfile": "Dockerfile", "args": {"V": "1"}}}')
        assert made.build == Build("Dockerfile", ".", (("V", "1"),))
        assert made.spec.base_image == BUILD_PLACEHOLDER  # the CLI builds it, then puts the tag in its place
        assert made.devcontainer[0].endswith("used build (the base image)")
        typed = self.made('{"build": {"dockerfile": "Dockerfile"}}', given={"base_image": "img:3"})
        assert (typed.build, typed.spec.base_image) == (None, "img:3")
        assert typed.devcontainer[1] == "  not used: build (the base image) (--base-image is typed)"

    def test_a_build_that_leaves_the_workspace_is_refused(self) -> None:
        from devagent.core.devcontainer.config_file import Build, build_paths

        with pytest.raises(DevagentError) as err:
            build_paths(".devcontainer/devcontainer.json", Build("../../etc/passwd"))
        assert err.value.message == (".devcontainer/devcontainer.json: build.dockerfile '../../etc/passwd' is "
                                     "outside the workspace")
        with pytest.raises(DevagentError) as err:
            build_paths(".devcontainer.json", Build("Dockerfile", "/"))
        assert err.value.message == ".devcontainer.json: build.context '/' is outside the workspace"


class TestSlurm:
    def test_slurm_options_become_the_job_request_and_the_environment_asks_no_engine_gpus(self) -> None:
        made = request({"host": "hpc-login", "slurm": "gpu", "gpus": "2", "time": "8:00:00", "account": "lab",
                        "wait_timeout": "30m"})
        assert made.slurm is not None
        assert (made.slurm.request.partition, made.slurm.request.gpus, made.slurm.request.time_s,
                made.slurm.request.account, made.slurm.wait_timeout_s, made.slurm.wait) == (
            "gpu", 2, 8 * 3600, "lab", 1800.0, True)
        assert made.spec.gpus == s.parse_gpus("none") and made.host == "hpc-login"
        assert request({"host": "l", "slurm": "gpu", "time": "10", "no_wait": True}).slurm.wait is False  # type: ignore[union-attr]

    def test_the_job_holds_the_containers_memory_and_cpus_from_flags_file_or_default(self) -> None:
        def asked(given: dict[str, object], text: str | None = None) -> tuple[str | None, int | None]:
            made = request({"host": "l", "slurm": "gpu", "time": "10", **given}, text)
            assert made.slurm is not None
            return made.slurm.request.memory, made.slurm.request.cpus

        assert asked({}) == ("16G", None)  # devagent's default memory; no CPU limit: the partition's default
        assert asked({"memory": "1536m", "cpus": "0.5"}) == ("1536M", 1)
        assert asked({}, 'memory = "32g"\ncpus = 8\n') == ("32G", 8)
        assert asked({"memory": "64g"}, 'memory = "32g"\ncpus = 2.5\n') == ("64G", 3)
        kept = request({"host": "l", "slurm": "gpu", "time": "10", "memory": "2g", "cpus": "0.5"})
        assert (kept.spec.limits.memory, kept.spec.limits.cpus) == (2 * 1024**3, 0.5)  # the container's own
        assert request({"memory": "2g", "cpus": "3"}).slurm is None

    def test_a_bare_up_asks_for_what_the_files_slurm_table_says_and_a_flag_wins(self) -> None:
        text = 'host = "hpc-login"\n[slurm]\npartition = "gpu"\ngpus = 2\ntime = "1:00:00"\nqos = "normal"\n'
        made = request({}, text)
        assert made.slurm is not None and (made.slurm.request.partition, made.slurm.request.gpus,
                                           made.slurm.request.qos) == ("gpu", 2, "normal")
        again = request({"gpus": "1", "slurm": "debug"}, text)
        assert again.slurm is not None and (again.slurm.request.partition, again.slurm.request.gpus) == ("debug", 1)
        assert request({}).slurm is None

    @pytest.mark.parametrize(("given", "message"), [
        ({"slurm": "gpu", "time": "10"}, "--slurm gpu needs the cluster's login node"),
        ({"host": "l", "slurm": "gpu"}, "--slurm gpu needs the job's time limit: the environment lives as long as "
         "the job"),
        ({"host": "l", "slurm": "gpu", "time": "10", "gpus": "0,1"},
         "--gpus 0,1 with --slurm: Slurm picks which GPUs, so give how many"),
        ({"host": "l", "slurm": "gpu;id", "time": "10"}, "invalid Slurm partition 'gpu;id'"),
        ({"host": "l", "slurm": "--uid=0", "time": "10"},
         "invalid Slurm partition '--uid=0': it must not start with '-'"),
        ({"host": "l", "slurm": "gpu", "time": "10\nid"}, "invalid Slurm time '10\\nid'"),
        ({"host": "l", "slurm": "gpu", "time": "10", "account": "lab$(id)"}, "invalid Slurm account 'lab$(id)'"),
        ({"host": "l", "slurm": "gpu", "time": "10", "qos": "-x"}, "invalid Slurm QOS '-x': it must not start "
         "with '-'"),
        ({"host": "l", "slurm": "gpu", "time": "10", "constraint": "a100 b"}, "invalid Slurm constraint 'a100 b'"),
        ({"host": "l", "time": "10"}, "--time is an option of a Slurm job: it needs --slurm PARTITION"),
        ({"host": "l", "no_wait": True}, "--no-wait is an option of a Slurm job: it needs --slurm PARTITION"),
    ])
    def test_bad_or_hostile_values_are_refused_before_anything_runs(self, given: dict[str, object],
                                                                     message: str) -> None:
        err = usage_error(given)
        assert err.message == message


class TestIdleRelease:
    def test_a_typed_limit_wins_over_the_files_and_none_means_no_limit(self) -> None:
        assert request({"idle_release": "2h"}, 'idle_release = "30m"\n').spec.idle_release == 7200.0
        assert request({}, 'idle_release = "30m"\n').spec.idle_release == 1800.0
        assert request().spec.idle_release is None

    def test_the_shortest_limit_is_the_callers(self) -> None:
        made = up_request(name="exp", given={"idle_release": "90s"}, config_text=None, config_path=CONFIG,
                          workspace="/w", uid=1000, client_profile="strict", argv=(), idle_minimum=60.0)
        assert made.spec.idle_release == 90.0

    def test_too_short_a_limit_names_the_option_or_the_file(self) -> None:
        typed = usage_error({"idle_release": "1m"}, 'idle_release = "2h"\n')
        assert (typed.message, typed.hint) == ("--idle-release 1m is shorter than the shortest limit, 5m",
                                               "give 5m or more, e.g. --idle-release 30m")
        in_file = usage_error({}, 'idle_release = "1m"\n')
        assert in_file.message == "idle_release in /w/devagent.toml 1m is shorter than the shortest limit, 5m"


def test_keep_going_is_taken_from_the_flag_and_is_off_without_it() -> None:
    assert request({"keep_going": True}).keep_going is True
    assert request().keep_going is False


def devcontainer_made(text: str, given: Mapping[str, object] | None = None) -> UpRequest:
    return TestDevcontainerLayer().made(text, given)


class TestDevcontainerSaid:
    """What `up` says of each part of a devcontainer.json, line by line."""

    HEAD = "devcontainer .devcontainer/devcontainer.json (sha256 0123456789abcdef): used "

    def test_hooks_editor_files_and_remote_env_are_taken_and_named(self) -> None:
        text = ('{"image": "i", "remoteEnv": {"B": "2"}, "postCreateCommand": "a", "postStartCommand": "b",'
                ' "customizations": {"vscode": {"extensions": ["ms-python.python"], "settings": {"a": 1}}}}')
        made = devcontainer_made(text)
        assert made.devcontainer == (
            self.HEAD + "remoteEnv, base image i",
            "  run in the environment as the login user: postCreateCommand, postStartCommand",
            "  VS Code extensions and settings: into the workspace's .vscode/",
        )
        assert (made.extensions, made.settings, made.spec.remote_env) == (("ms-python.python",), {"a": 1},
                                                                          (("B", "2"),))
        assert made.devcontainer_file is not None and made.devcontainer_file.path == (
            ".devcontainer/devcontainer.json")
        assert made.devcontainer_file.plan.extensions == ("ms-python.python",)
        plain = request()
        assert (plain.extensions, plain.settings, plain.devcontainer_file, plain.commands) == ((), {}, None, ())

    def test_a_file_that_sets_nothing_says_so_and_lists_what_it_ignored(self) -> None:
        made = devcontainer_made('{"name": "x", "shutdownAction": "none"}')
        assert made.devcontainer == (self.HEAD + "nothing",
                                     "  ignored (no devagent meaning): name, shutdownAction")
        assert made.spec.base_image == s.DEFAULT_BASE_IMAGE

    def test_the_build_fields_are_named_as_the_build_and_the_container_user_as_the_user(self) -> None:
        made = devcontainer_made('{"dockerFile": "Dockerfile", "context": ".", "containerUser": "bob"}')
        assert made.devcontainer == (self.HEAD + "user bob, build (the base image)",)

    def test_a_typed_team_image_takes_neither_the_files_image_nor_its_build(self) -> None:
        team = {"image": "registry.example/team/env:1"}
        image = devcontainer_made('{"image": "devagent-base:bookworm"}', given=team)
        assert image.devcontainer == (self.HEAD + "nothing",)
        built = devcontainer_made('{"build": {"dockerfile": "Dockerfile"}}', given=team)
        assert (built.devcontainer, built.build) == ((self.HEAD + "nothing",), None)

    def test_an_optional_gpu_nothing_else_sets_is_one_if_the_engine_has_a_free_one(self) -> None:
        made = devcontainer_made('{"image": "i", "hostRequirements": {"gpu": "optional"}}')
        assert made.devcontainer[-1] == ('  hostRequirements.gpu "optional": one GPU if the engine has a free '
                                         "one, else none")

    def test_what_is_read_but_not_applied_yet_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from devagent.core import up_request as module

        monkeypatch.setattr(module, "NOT_APPLIED_YET", ("remoteEnv", "containerEnv"))
        made = devcontainer_made('{"image": "i", "containerEnv": {"A": "1"}, "remoteEnv": {"B": "2"}}')
        assert made.devcontainer == (self.HEAD + "base image i",
                                     "  read, not applied yet: containerEnv, remoteEnv")


SLURM_JOB: Mapping[str, object] = {"host": "l", "slurm": "gpu", "time": "10"}


class TestSlurmDetails:
    def test_without_gpus_or_extras_the_job_asks_for_none(self) -> None:
        made = request(SLURM_JOB)
        assert made.slurm is not None
        assert (made.slurm.request.gpus, made.slurm.request.account, made.slurm.request.qos,
                made.slurm.request.constraint, made.slurm.wait_timeout_s) == (0, None, None, None, None)
        assert request({**SLURM_JOB, "gpus": "none"}).slurm.request.gpus == 0  # type: ignore[union-attr]
        assert request({**SLURM_JOB, "gpus": "3"}).slurm.request.gpus == 3  # type: ignore[union-attr]

    def test_an_empty_partition_is_no_slurm_job(self) -> None:
        assert request({"slurm": ""}).slurm is None

    def test_the_wait_timeout_may_be_as_short_as_a_second(self) -> None:
        assert request({**SLURM_JOB, "wait_timeout": "1s"}).slurm.wait_timeout_s == 1.0  # type: ignore[union-attr]

    @pytest.mark.parametrize(("value", "message", "hint"), [
        ("soon", "--wait-timeout 'soon' is not a duration", "e.g. --wait-timeout 30m (units: s, m, h, d; 1h30m)"),
        ("0s", "--wait-timeout 0s is shorter than the shortest limit, 1s", "give 1s or more, e.g. --wait-timeout 30m"),
    ])
    def test_a_bad_wait_timeout_names_the_option(self, value: str, message: str, hint: str) -> None:
        err = usage_error({**SLURM_JOB, "wait_timeout": value})
        assert (err.message, err.hint) == (message, hint)

    @pytest.mark.parametrize("key", ["time", "account", "qos", "constraint", "wait_timeout", "no_wait"])
    def test_each_job_option_without_a_partition_is_refused_naming_it(self, key: str) -> None:
        option = "--" + key.replace("_", "-")
        err = usage_error({"host": "l", key: True if key == "no_wait" else "x"})
        assert (err.message, err.hint) == (f"{option} is an option of a Slurm job: it needs --slurm PARTITION",
                                           f"add --slurm PARTITION (and --host LOGIN), or drop {option}")

    @pytest.mark.parametrize(("given", "hint"), [
        ({"slurm": "gpu", "time": "10"},
         'name it with --host LOGIN (as you reach it with ssh), DEVAGENT_HOST, or host = "..." in /w/devagent.toml'),
        ({"host": "l", "slurm": "gpu"}, "e.g. --time 8:00:00 (or time = \"8:00:00\" in /w/devagent.toml's [slurm] "
         "table)"),
        ({"host": "l", "slurm": "gpu", "time": "10", "gpus": "all"}, "e.g. --gpus 2 (0 or none: a job without GPUs)"),
    ])
    def test_each_refusal_says_what_to_give(self, given: dict[str, object], hint: str) -> None:
        assert usage_error(given).hint == hint
