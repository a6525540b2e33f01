"""What the agent and run summaries both do inside an environment: the I/O under them.

One locked append on a workspace file (``append``, opened through devagent/nofollow, as every file a
workspace holds), the notebook writer built on that (``notebook_writer``), the workspace state folder and the
save journal read back (``workspace_state``), where things are in the environment this process runs in
(``locations``), the one guard around NVML (``nvml``) and the user's own interpreter (``interpreter``).

Imports the standard library, nvidia-ml-py, devagent.nofollow and devagent.core only: never the agent
(devagent.agent), run summaries (devagent.runs) or devagent.control.
"""
