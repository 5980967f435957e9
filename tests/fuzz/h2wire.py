"""Just enough HTTP/2 framing to send a server bytes no well-behaved client would.

Frames are built by hand (RFC 9113 §4.1) and header blocks use only HPACK
literal fields without Huffman coding (RFC 7541 §6.2.2), so a test can put a
lying length, an unknown frame type or a torn gRPC message on the wire.
"""

from __future__ import annotations

import socket
import struct
import time

__all__ = [
    "DATA",
    "HEADERS",
    "PREFACE",
    "SETTINGS",
    "exchange",
    "frame",
    "grpc_headers",
    "grpc_message",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS = 0x0, 0x1, 0x4
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(
    kind: int, flags: int, stream: int, payload: bytes, length: int | None = None
) -> bytes:
    """One frame; ``length`` overrides the true payload length (to lie)."""
    size = len(payload) if length is None else length
    return (
        struct.pack(">I", size)[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream & 0x7FFFFFFF)
        + payload
    )


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _literal(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        b"\x00"  # literal without indexing, new name
        + _hpack_int(len(raw_name), 7)
        + raw_name
        + _hpack_int(len(raw_value), 7)
        + raw_value
    )


def grpc_headers(path: str, authority: str) -> bytes:
    fields = (
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    )
    return b"".join(_literal(name, value) for name, value in fields)


def grpc_message(body: bytes, declared: int | None = None) -> bytes:
    """A gRPC length-prefixed message; ``declared`` may lie about the length."""
    size = len(body) if declared is None else declared
    return b"\x00" + struct.pack(">I", size) + body


def exchange(port: int, data: bytes, wait_s: float = 1.0) -> bytes:
    """Send ``data`` on a fresh connection; whatever came back within ``wait_s``."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:
            return bytes(received)  # the server closed on us first: fine
        deadline = time.monotonic() + wait_s
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)
