"""Run summaries: `devagent run` (wrapped.py) and runs nobody wrapped (observer.py) each get a section in the lab
notebook.

They work on any machine with a folder, inside an environment or not, and never import the agent
(devagent.agent): only devagent.inside, devagent.core and the standard library (nvidia-ml-py when present).
"""
