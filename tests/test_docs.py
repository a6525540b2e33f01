"""The documentation keeps up with the code: every command, every exit code, every link.

docs/reference/cli.md holds each command's real `--help` text. After changing a command, rewrite those blocks
with `.venv/bin/python tests/test_docs.py --write` and review the diff.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from devagent.cli import cli, load_commands
from devagent.errors import ExitStatus

load_commands()  # the group registers its commands as they are asked for: walk_commands reads them all

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_REFERENCE = DOCS / "reference" / "cli.md"
EXIT_CODES = DOCS / "reference" / "exit-codes.md"
HELP_WIDTH = 78  # what click uses on an 80-column terminal; fixed, so the terminal running the test does not matter


def walk_commands(command: click.Command, path: tuple[str, ...] = ("devagent",)) -> Iterator[tuple[str, ...]]:
    """Every visible command as its full path: ('devagent',), ('devagent', 'up'), ('devagent', 'image', 'build')."""
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from walk_commands(sub, (*path, name))


COMMANDS = [" ".join(path) for path in walk_commands(cli)]


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def without_code(text: str) -> str:
    """TEXT with fenced code blocks and inline code spans blanked out (they hold examples, not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)


def headings(text: str) -> list[str]:
    return [re.sub(r"[`*]", "", m.group(1)).strip() for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$",
                                                                         without_code(text), re.MULTILINE)]


def help_text(command: str) -> str:
    args = [*command.split()[1:], "--help"]
    result = CliRunner().invoke(cli, args, prog_name="devagent", terminal_width=HELP_WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


def recorded_help(text: str, command: str) -> re.Match[str] | None:
    """The ```text block that follows the heading for COMMAND in the CLI reference."""
    pattern = rf"^#+ `?{re.escape(command)}`?\s*\n(?:(?!^#|^```).*\n)*?^```text\n(?P<help>.*?)^```$"
    return re.search(pattern, text, re.MULTILINE | re.DOTALL)


# -- commands -----------------------------------------------------------------------------------------------------


def test_the_command_walk_finds_the_commands_users_type() -> None:
    assert {"devagent up", "devagent down", "devagent ls", "devagent image build"} <= set(COMMANDS)
    assert "devagent ready" not in COMMANDS  # hidden: up's internal commit signal


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_heading_in_the_cli_reference(command: str) -> None:
    assert command in headings(CLI_REFERENCE.read_text(encoding="utf-8")), (
        f"docs/reference/cli.md has no heading `## {command}`"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_the_cli_reference_shows_each_commands_current_help(command: str) -> None:
    match = recorded_help(CLI_REFERENCE.read_text(encoding="utf-8"), command)
    assert match is not None, f"docs/reference/cli.md: no ```text block of `{command} --help` under its heading"
    assert match.group("help") == help_text(command), (
        f"the help of `{command}` changed: run `.venv/bin/python tests/test_docs.py --write` and review the diff"
    )


# -- exit codes ---------------------------------------------------------------------------------------------------


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([cell.strip().strip("`").strip() for cell in line.strip().strip("|").split("|")])
    return rows


@pytest.mark.parametrize("status", list(ExitStatus), ids=lambda s: s.name)
def test_every_exit_status_is_a_row_of_the_exit_code_table(status: ExitStatus) -> None:
    rows = table_rows(EXIT_CODES.read_text(encoding="utf-8"))
    assert any(row[:2] == [str(status.value), status.name] for row in rows), (
        f"docs/reference/exit-codes.md has no row `| {status.value} | {status.name} | ... |`"
    )


def test_the_exit_code_table_lists_no_code_that_does_not_exist() -> None:
    rows = [row for row in table_rows(EXIT_CODES.read_text(encoding="utf-8")) if row and row[0].isdigit()]
    assert sorted(int(row[0]) for row in rows) == sorted(s.value for s in ExitStatus)


# -- README and links ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_the_readme_gives_the_two_commands(command: str) -> None:
    assert command in README.read_text(encoding="utf-8")


def relative_links(path: Path) -> Iterator[str]:
    """Every link target in PATH that is not a URL: 'other.md', 'other.md#anchor', '#anchor'."""
    text = without_code(path.read_text(encoding="utf-8"))
    inline = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    reference = re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, re.MULTILINE)
    for target in [*inline, *reference]:
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            yield target


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives PAGE's headings: lowercase, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
            for heading in headings(page.read_text(encoding="utf-8"))}


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        linked = (page.parent / file) if file else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    assert not broken_links(page), f"{page.relative_to(ROOT)} has broken links: {broken_links(page)}"


def test_the_link_check_sees_links_and_anchors() -> None:
    assert "docs/index.md" in list(relative_links(README))
    assert "the-host-key-is-known-before-the-first-login--no-tofu" in anchors(
        DOCS / "explanation" / "security-model.md")


# -- regenerate the recorded help ---------------------------------------------------------------------------------


def write_cli_reference() -> None:
    text = CLI_REFERENCE.read_text(encoding="utf-8")
    for command in COMMANDS:
        match = recorded_help(text, command)
        if match is None:
            sys.exit(f"docs/reference/cli.md: add a heading `## {command}` with a ```text block under it first")
        text = text[: match.start("help")] + help_text(command) + text[match.end("help"):]
    CLI_REFERENCE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_docs.py --write   (rewrites the help blocks in docs/reference/cli.md)")
    write_cli_reference()


def test_the_reference_names_no_hidden_command_as_one_to_type() -> None:
    """cli.md and exit-codes.md spoke of `devagent serve`, which `devagent --help` does not list."""
    from devagent.cli.app import cli

    hidden = [name for name, command in cli.commands.items() if command.hidden]
    assert "serve" in hidden
    for page in ("cli.md", "exit-codes.md"):
        text = (DOCS / "reference" / page).read_text(encoding="utf-8")
        assert [name for name in hidden if f"devagent {name}`" in text or f"devagent {name} " in text] == [], page


def test_every_block_of_the_tutorial_is_run_or_said_why_not() -> None:
    """tests/integration/test_docs_tutorial.py runs the tutorial's blocks against real output: a block it does not
    know (a new one) fails here, without Docker, until it is given an action or a reason."""
    from tests.docs_console import blocks
    from tests.integration.test_docs_tutorial import TUTORIAL, action

    kinds = [action(block) for block in blocks(TUTORIAL)]
    assert sum(not isinstance(kind, str) for kind in kinds) >= 7  # up, the journal, the notebook, run, down, …


def test_every_console_block_of_the_how_tos_is_run_or_said_why_not() -> None:
    from tests.docs_console import blocks
    from tests.integration.test_docs_tutorial import HOW_TOS, action

    kinds = [action(block, page) for page in HOW_TOS for block in blocks(page, "console")]
    assert any(not isinstance(kind, str) for kind in kinds)
