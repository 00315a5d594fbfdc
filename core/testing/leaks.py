"""Finding aiohttp sessions that were never closed, without waiting for the garbage collector.

An unclosed `aiohttp.ClientSession` is reported only when it is collected ("Unclosed client
session", logged at ERROR), which may happen during a later test, or never. `SessionTracker`
records every session created while it is active, so a test gateway can check, right after
its event loop ended, that every session opened on that loop was closed, and name where
each open one was created.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import aiohttp

_lock = threading.Lock()
_active: list[SessionTracker] = []
_original_init: Callable[..., None] | None = None


def _tracking_init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
    assert _original_init is not None
    _original_init(self, *args, **kwargs)
    with _lock:
        trackers = list(_active)
    if trackers:
        where = "".join(traceback.format_stack(limit=12)[:-1])
        for tracker in trackers:
            tracker._add(self, where)


def _install() -> None:
    global _original_init
    if _original_init is None:
        _original_init = aiohttp.ClientSession.__init__
        aiohttp.ClientSession.__init__ = _tracking_init  # type: ignore[method-assign]


class SessionTracker:
    """Records the aiohttp sessions created while it is active (a context manager)."""

    def __init__(self) -> None:
        self._sessions: list[tuple[weakref.ref[aiohttp.ClientSession], str]] = []

    def __enter__(self) -> SessionTracker:
        with _lock:
            _install()
            _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _active.remove(self)

    def _add(self, session: aiohttp.ClientSession, where: str) -> None:
        self._sessions.append((weakref.ref(session), where))

    def left_open(self, loop: asyncio.AbstractEventLoop | None = None) -> list[str]:
        """Where each session still open was created (only sessions of `loop`, if given)."""
        found = []
        for ref, where in self._sessions:
            session = ref()
            if session is None or session.closed:
                continue
            if loop is not None and getattr(session, "_loop", None) is not loop:
                continue
            found.append(where)
        return found
