"""Ports for the processes a test or bench starts beside the platform's."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
