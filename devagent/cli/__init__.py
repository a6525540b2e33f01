"""The command line: the only package that imports click. Each command parses, calls one library function, and
renders the result; each module is one concern (app.py: the group and its entry point; site_options.py: which engine).

The command modules register their commands when the group is asked for one (app.COMMAND_MODULES): importing
this package imports none of them; app.load_commands() imports them all.
"""

from devagent.cli.app import cli, load_commands, main

__all__ = ["cli", "load_commands", "main"]
