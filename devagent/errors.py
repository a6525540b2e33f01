"""The one error type users meet, and the exit codes it maps to (see docs/reference/exit-codes.md)."""

from __future__ import annotations

import enum


@enum.unique  # two names for one code would be an alias that iteration (and the docs table check) never sees
class ExitStatus(enum.IntEnum):
    """Process exit codes. Documented in docs/reference/exit-codes.md, whose table tests/test_docs.py holds to this
    enum, row for row."""

    OK = 0
    ERROR = 1  # an unexpected error (a bug): a traceback is shown
    USAGE = 2  # bad command line or bad input (invalid name, size, GPU list, workspace)
    DOCKER_UNAVAILABLE = 3  # no Docker Engine answers
    DOCKER_PERMISSION = 4  # the engine's socket exists but this user may not use it
    IMAGE_MISSING = 5  # the base image is not present and cannot be pulled
    IMAGE_BUILD_FAILED = 6  # building the derived image failed
    CONTAINER_FAILED = 7  # the container exited or never became ready
    GPU_UNAVAILABLE = 8  # GPUs requested but the engine has no NVIDIA runtime / no such GPU
    SSH_CONFIG = 9  # the user's ssh config does not parse, already defines the name, or overrides devagent
    LOGIN_FAILED = 10  # the key login could not be proven
    NOT_FOUND = 11  # no environment of that name
    CONFLICT = 12  # the name is taken by something devagent did not make, or up's options differ
    NOTEBOOK = 13  # the lab notebook could not be written
    DOCTOR_FAILED = 14  # `devagent doctor`: at least one check failed (each names its fix)
    SERVER_UNREACHABLE = 15  # --host: the server cannot be reached (unknown name, no route, refused, timed out)
    SERVER_AUTH = 16  # --host: ssh to the server could not authenticate (devagent never prompts: BatchMode)
    SERVER_REFUSED = 17  # --host: the server's sshd refuses what devagent needs (TCP or socket forwarding)
    PORT_TAKEN = 18  # the environment's fixed port, or a forward's local port, is taken by something else
    GPU_BUSY = 19  # a GPU asked for is held by another container or process, or too few GPUs are free
    REGISTRY = 20  # the image registry is unreachable, refused the credentials, or lacks the image or tag
    NOT_REPRODUCIBLE = 21  # `devagent reproduce`: the run lacks what an exact reproduction needs
    HANGUP = 129  # SIGHUP (the terminal or ssh session closed); up rolled everything back
    INTERRUPTED = 130  # Ctrl-C (SIGINT); up rolled everything back
    TERMINATED = 143  # SIGTERM; up rolled everything back


class DevagentError(Exception):
    """A failure the user can cause or meet: a message, a hint that names the fix, and an exit status.

    >>> str(DevagentError("no Docker Engine answers", hint="start it: sudo systemctl start docker",
    ...                   status=ExitStatus.DOCKER_UNAVAILABLE))
    'no Docker Engine answers\\n  hint: start it: sudo systemctl start docker'
    """

    def __init__(self, message: str, *, hint: str | None = None, status: ExitStatus = ExitStatus.ERROR,
                 details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.details = details

    def __str__(self) -> str:
        text = self.message
        if self.details:
            text += "\n" + "\n".join("  | " + line for line in self.details.rstrip("\n").splitlines())
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
