"""The agent, the container's main process: sshd supervision (agent.py), the save watcher (watcher.py, with its
inotify observer in inotify.py) and its journal (journal.py), the GPU check (gpucheck.py). It starts the observer
of run summaries (devagent.runs); nothing below imports it."""
