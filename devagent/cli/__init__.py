"""The command line: the only package that imports click. Each command parses, calls one library function, and
renders the result; each module is one concern (app.py: the group and its entry point; site_options.py: which engine).
"""

from devagent.cli import environments, forwards, gpus, images, in_environment, reproduce, sharing  # noqa: F401 (registers)
from devagent.cli.app import cli, main

__all__ = ["cli", "main"]
