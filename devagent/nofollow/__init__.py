"""Files in folders someone else controls, reached without following a link: one primitive for the host side
and the container side alike.

Imports the standard library and devagent.errors only (an import-linter contract says so), so the agent in a
bare image and devagent run as root on a shared server use the same code.
"""
