"""Budget windows on the calendar (UTC): a day, a week from Monday, a month, or N hours."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_current: dict[str, tuple[str, float]] = {}
"""window -> (id, end as a timestamp) of its current period: computed once per period."""


def period(window: str, now: datetime | None = None) -> tuple[str, float]:
    """The id of the current period of `window` and the seconds until it ends."""
    if now is None:
        stamp = time.time()
        found = _current.get(window)
        if found is not None and stamp < found[1]:
            return found[0], found[1] - stamp
        name, left = _period(window, datetime.fromtimestamp(stamp, UTC))
        _current[window] = (name, stamp + left)
        return name, left
    return _period(window, now)


def _period(window: str, now: datetime) -> tuple[str, float]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return day.strftime("%Y-%m-%d"), _left(now, day + timedelta(days=1))
    if window == "week":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = monday.isocalendar()
        return f"{year}-W{week:02d}", _left(now, monday + timedelta(days=7))
    if window == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first.strftime("%Y-%m"), _left(now, following)
    hours = int(window.removesuffix("h"))
    span = hours * 3600
    index = int(now.timestamp() // span)
    return f"{hours}h-{index}", (index + 1) * span - now.timestamp()


def _left(now: datetime, end: datetime) -> float:
    return max((end - now).total_seconds(), 0.001)


def today(now: datetime | None = None) -> str:
    """The UTC day, `YYYY-MM-DD` (computed once per day)."""
    if now is None:
        return period("day")[0]
    return now.strftime("%Y-%m-%d")
