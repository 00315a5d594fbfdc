"""Waiting and ports for tests: one polling helper with a deadline, one port helper.

`wait_until` polls a condition with a short, growing interval until it holds or the timeout
passes, then fails with a message that says what was awaited and what was last seen.
`bound_socket` binds to port 0 and reads the port back, so no test ever picks a "free" port
by binding and releasing it (another process may take it in between); `refused_port` keeps
such a socket bound but not listening, so connections to it are refused for as long as the
block runs and nothing else can take the port.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Long enough for a loaded CI machine; a condition that holds is seen within milliseconds."""


class WaitTimeout(AssertionError):
    """A condition did not hold in time (an AssertionError, so pytest shows it as a failure)."""


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str | Callable[[], str] | None = None,
) -> T:
    """Call `check` until it returns a true value, and return that value.

    Polls after 1 ms, then at a growing interval up to 50 ms. After `timeout` seconds it
    raises WaitTimeout naming `what` (a text, or a function that describes the state) and
    the last value `check` returned. An exception from `check` propagates at once.
    """
    deadline = time.monotonic() + timeout
    interval = 0.001
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            described = what() if callable(what) else what
            name = described or getattr(check, "__qualname__", repr(check))
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {name}; last: {value!r}")
        time.sleep(min(interval, left))
        interval = min(interval * 2, 0.05)


def bound_socket(
    host: str = "127.0.0.1", *, listen: bool = True, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A socket bound to port 0 on `host` (listening, unless told otherwise); the port the
    system chose is `port_of(sock)`. The caller owns and closes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.bind((host, 0))
        if listen and kind == socket.SOCK_STREAM:
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a socket is bound to, read back from the socket."""
    return int(sock.getsockname()[1])


@contextmanager
def refused_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on `host` where connections are refused while the block runs.

    The port stays bound (not listening) until the block ends, so no other test or process
    can start listening on it in the meantime.
    """
    with bound_socket(host, listen=False) as sock:
        yield port_of(sock)
