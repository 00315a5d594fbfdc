"""The gateway's event loop: the standard asyncio loop or uvloop (`modelway[uvloop]`).

`gateway.event_loop` chooses it; the `MODELWAY_EVENT_LOOP` environment variable overrides
the configuration (for a test run or a benchmark on the other loop). mitmproxy runs on
either: it uses asyncio streams and servers only, which uvloop implements.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from modelway.errors import ConfigError

ENV = "MODELWAY_EVENT_LOOP"
CHOICES = ("asyncio", "uvloop")

T = TypeVar("T")


def chosen(configured: str = "asyncio") -> str:
    """The loop to run: the environment's choice, else the configured one."""
    choice = os.environ.get(ENV, "").strip().lower() or configured
    if choice not in CHOICES:
        raise ConfigError(f"{ENV}={choice!r}: the event loop is one of {', '.join(CHOICES)}")
    return choice


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory of `choice`'s loops (None: asyncio's default)."""
    if choice != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        raise ConfigError(
            "event_loop: uvloop needs the uvloop package (pip install 'modelway[uvloop]')"
        ) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], configured: str = "asyncio") -> T:
    """`asyncio.run(main)` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(chosen(configured))) as runner:
        return runner.run(main)
