"""devagent: secure SSH-ready PyTorch dev containers, and a lab notebook that keeps itself.

Layout: ``core/`` is pure (data and text, no I/O; ``core/layout.py`` spells every path of an environment);
``control/`` runs on the user's machine and talks to Docker, OpenSSH and the ssh config. Inside the environment
``agent/`` is the agent, ``runs/`` the run summaries (importable without the agent) and ``inside/`` what both
use; they need only the standard library, click, watchdog and nvidia-ml-py. docs/explanation/architecture.md
says which way imports go.
"""

__version__ = "0.1.0"
