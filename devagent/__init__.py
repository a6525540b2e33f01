"""devagent: secure SSH-ready PyTorch dev containers, and a lab notebook that keeps itself.

Layout: ``core/`` is pure (data and text, no I/O); ``host/`` runs on the user's machine and talks to Docker,
OpenSSH and the ssh config; ``container/`` runs inside the environment (the agent) and needs only the standard
library, click, watchdog and nvidia-ml-py.
"""

__version__ = "0.1.0"
