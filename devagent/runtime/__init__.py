"""What the agent and run summaries both do inside an environment: the I/O under them.

Opening a file in a workspace without following links (``beneath``), one locked append on it (``append``), the
notebook writer built on that (``notebook_writer``), the workspace state folder and the save journal read back
(``workspace_state``), reads of files someone else may have planted, at a bounded cost (``bounded_read``), where
things are in the environment this process runs in (``environment``), the one guard
around NVML (``nvml``) and the user's own interpreter (``interpreter``).

Imports the standard library, nvidia-ml-py and devagent.core only: never the agent (devagent.container), run
summaries (devagent.runs) or the host side.
"""
