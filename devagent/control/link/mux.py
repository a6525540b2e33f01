"""The multiplexing protocol of an OpenSSH ControlMaster (OpenSSH's PROTOCOL.mux, version 4), as far as the link
speaks it: the hello, a local forward, a stdio forward (a stream to a TCP port on the server) and the terminate
request, with their packets and answers. Only the link (link.py) imports it (an import-linter contract)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

_MUX_VERSION = 4
MUX_MSG_HELLO = 0x00000001
MUX_C_TERMINATE = 0x10000005
MUX_C_OPEN_FWD = 0x10000006
MUX_C_NEW_STDIO_FWD = 0x10000008
MUX_S_OK = 0x80000001
MUX_S_PERMISSION_DENIED = 0x80000002
MUX_S_FAILURE = 0x80000003
MUX_S_SESSION_OPENED = 0x80000006
MUX_FWD_LOCAL = 1
PORT_STREAMLOCAL = 0xFFFFFFFE  # (u_int)-2: the "host" is a Unix socket path


class MuxError(ConnectionError):
    """The master answered a request with a failure (or not at all)."""


def mux_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">I", len(data)) + data


def mux_packet(kind: int, body: bytes) -> bytes:
    payload = struct.pack(">I", kind) + body
    return struct.pack(">I", len(payload)) + payload


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise MuxError("the ssh master closed the control connection")
        data += chunk
    return data


def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    (length,) = struct.unpack(">I", _read_exact(sock, 4))
    payload = _read_exact(sock, length)
    (kind,) = struct.unpack(">I", payload[:4])
    return kind, payload[4:]


def mux_session(control_path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(control_path))
        sock.sendall(mux_packet(MUX_MSG_HELLO, struct.pack(">I", _MUX_VERSION)))
        kind, body = read_packet(sock)
        if kind != MUX_MSG_HELLO or struct.unpack(">I", body[:4])[0] != _MUX_VERSION:
            raise MuxError(f"the ssh master speaks another multiplexing protocol ({kind:#x} {body[:4].hex()})")
    except BaseException:
        sock.close()
        raise
    return sock


def expect_ok(sock: socket.socket, request_id: int, ok: int) -> None:
    kind, body = read_packet(sock)
    if kind == ok and struct.unpack(">I", body[:4])[0] == request_id:
        return
    reason = ""
    if kind in (MUX_S_FAILURE, MUX_S_PERMISSION_DENIED) and len(body) >= 8:
        (size,) = struct.unpack(">I", body[4:8])
        reason = body[8:8 + size].decode(errors="replace")
    raise MuxError(reason or f"unexpected answer {kind:#x} from the ssh master")


class Stream(socket.socket):
    """A stream through the master: one end of a socket pair whose other end the master holds. The control
    connection that asked for it must stay open while it is used (the master ends the stream when it closes)."""

    _control: socket.socket | None = None

    def _real_close(self, *args: object, **kwargs: object) -> None:
        super()._real_close(*args, **kwargs)  # type: ignore[misc]
        if self._control is not None:
            self._control.close()
            self._control = None
