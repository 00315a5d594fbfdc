"""Rate-limited logging under overload: a flood of one message becomes a few lines and a count.

When file descriptors run out, asyncio logs a traceback for every failed accept (tens of
thousands a second), and a misbehaving client can make any warning repeat as fast as it
sends. `FloodFilter` lets `burst` records of one message (logger and format string) through
per `interval` seconds, drops the rest, and adds to the next record that passes how many
like it were dropped. `limited` puts one on each logger that can flood while a gateway runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

FLOOD_LOGGERS = (
    "asyncio",
    "modelway",
    "mitmproxy.proxy.server",
    "mitmproxy.proxy.mode_servers",
    "mitmproxy.addonmanager",
)


class FloodFilter(logging.Filter):
    """At most `burst` records per message and `interval`; the dropped ones are counted."""

    def __init__(
        self,
        interval: float = 10.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self._windows: dict[tuple[str, str], list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            dropped = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            if len(self._windows) > 1000:  # many distinct messages: forget the old windows
                self._windows = {key: self._windows[key]}
            if dropped:
                record.msg = f"{record.msg} ({dropped} more like it in the last window)"
            return True
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False


@contextlib.contextmanager
def limited(interval: float = 10.0, burst: int = 5) -> Iterator[None]:
    """A FloodFilter on each logger that can flood, while the block runs (a gateway's run)."""
    filters = [(logging.getLogger(name), FloodFilter(interval, burst)) for name in FLOOD_LOGGERS]
    for logger, flood in filters:
        logger.addFilter(flood)
    try:
        yield
    finally:
        for logger, flood in filters:
            logger.removeFilter(flood)
