"""Files in folders someone else controls, reached without following a link: one primitive for the host side
and the container side alike.

- ``walk.py``: the one walker (``step``, ``walk``, ``open_file``: ``openat`` one name at a time with
  ``O_NOFOLLOW``, ``O_NONBLOCK`` for the file, ``fstat`` checks), its rules by keyword (``own``, ``create``,
  ``read_limited``), the one error type ``PathRefused`` (an ``OSError`` with a hint; ``as_error()`` is the
  ``DevagentError`` a command ends with), and what callers use: ``open_beneath``/``write_beneath`` for
  devagent's state files in a workspace, ``open_below``/``open_regular`` for files the agent reads,
  ``replace_file`` for a whole-or-nothing replacement in a held folder;
- ``bounded.py``: reading an open file at a stated memory cost (``read_content``, ``Lines``);
- ``folder.py``: ``Folder`` (a held folder, for the host writing in a workspace as root), ``copy_tree`` and
  ``give_tree`` (a tree copied or given to another user, never a set-uid file, never through a link).

Imports the standard library and devagent.errors only (an import-linter contract and tests/test_file_access.py
say so), so the agent in a bare image and devagent run as root on a shared server use the same code. Everywhere
else in devagent/, ``open``, ``os.open``, ``Path.open`` and ``read_text``/``write_bytes``… are for devagent's own
files only (tests/test_file_access.py lists each place, with why).
"""
