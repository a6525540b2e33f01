"""The command group, its entry point and what every command shares: how steps and results are printed, how click's
broken pipes are told apart. Heavy modules (docker, paramiko) are imported inside the commands that need them, so
`devagent --help` stays fast."""

from __future__ import annotations

import contextlib
import importlib
import select
import sys
from dataclasses import dataclass
from typing import Any

import click

from devagent import __version__
from devagent.control.lifecycle.interrupts import acting_on_stop_signals
from devagent.core.markdown import printable
from devagent.errors import DevagentError, ExitStatus

JSON_VERSION = 1


@dataclass(frozen=True)
class Invocation:
    """What main() was started with, for the commands that record it (click's context object)."""

    argv: tuple[str, ...]  # after the program name


def echo_step(text: str) -> None:
    """TEXT on stderr, its control characters made visible (``printable``): steps, reports and errors carry what
    servers, engines, containers and notebooks said, and an escape sequence in it is an instruction to the
    terminal (OSC 52 writes the clipboard)."""
    # After SIGHUP the terminal is gone and writing fails: that must not stop up's rollback, nor its report.
    with contextlib.suppress(OSError):
        click.echo(printable(text), err=True)


def echo_result(text: str) -> None:
    """TEXT on stdout, at once, its control characters made visible (see ``echo_step``)."""
    # A line the user waits for (a URL) goes out at once, also when stdout is a pipe.
    with contextlib.suppress(OSError):
        click.echo(printable(text))
        sys.stdout.flush()


def _output_closed() -> bool:
    """Whether whoever reads our stdout or stderr went away (`devagent ls | head`): a pipe whose reader closed
    polls as an error."""
    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


class _Commands(click.Group):
    """click turns every EPIPE into a silent exit 1 (right for `devagent ls | head`). One from anywhere else — a
    socket to a server or a container that closed — is a fault: it must say so, not vanish."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            if _output_closed():
                raise
            raise RuntimeError(f"unexpected broken pipe (not on stdout or stderr): {exc}") from exc


# The module of devagent.cli that registers each command. A command imports its own module only: `devagent agent`,
# every container's main process, reaches sshd's start without the ~40 ms of `up`'s imports. Listing the commands
# (--help) imports them all; tests/test_cli.py checks this table against what the modules register.
COMMAND_MODULES = {
    "environments": ("up", "init", "code", "ssh", "doctor", "ls", "down"),
    "forwards": ("forward", "jupyter", "tensorboard"),
    "gpus": ("gpus",),
    "images": ("image",),
    "in_environment": ("agent", "run", "gpu-check", "serve", "end-sessions", "people-entry", "job-ended",
                       "lifecycle", "vscode-files", "editor-files", "sshd-config"),
    "reproduce": ("reproduce",),
    "sharing": ("share", "unshare"),
}


def load_commands(name: str | None = None) -> None:
    """Import the module that registers command NAME (None, or a name no module registers: every module)."""
    known = name is not None and any(name in names for names in COMMAND_MODULES.values())
    for module, names in COMMAND_MODULES.items():
        if not known or name in names:
            importlib.import_module(f"devagent.cli.{module}")


class _LazyCommands(_Commands):
    """The top-level group: its commands are registered by their modules as they are asked for."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            load_commands(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)


@click.group(cls=_LazyCommands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="devagent")
def cli() -> None:
    """Secure SSH-ready PyTorch dev containers for VS Code Remote-SSH, with a lab notebook that keeps itself.

    \b
    devagent up NAME       provision an environment and its ssh alias NAME
    ssh NAME               log in (VS Code: Remote-SSH → Connect to Host → NAME)
    devagent down NAME     remove the container, the alias and the pinned key; files stay
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turn DevagentError into its message and exit status. ARGV: the arguments after
    the program name [default: sys.argv[1:]]."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        # Ctrl-C and SIGTERM act also when the command was started with them ignored (a script's background job).
        with acting_on_stop_signals():
            result = cli.main(args=args, prog_name="devagent", standalone_mode=False, obj=Invocation(tuple(args)))
    except DevagentError as exc:
        echo_step(f"Error: {exc}")
        return int(exc.status)
    except (click.exceptions.Abort, KeyboardInterrupt):  # Ctrl-C outside `up`'s own (click makes it an Abort)
        echo_step("Error: interrupted\n  hint: run the command again")
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitStatus.USAGE)
    return int(result) if isinstance(result, int) else 0
