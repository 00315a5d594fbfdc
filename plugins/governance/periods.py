"""Budget windows on the calendar (UTC): a day, a week from Monday, a month, or N hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def period(window: str, now: datetime | None = None) -> tuple[str, float]:
    """The id of the current period of `window` and the seconds until it ends."""
    now = now or datetime.now(UTC)
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
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")
