"""`modelway stats`: a running gateway's per-route, per-variant statistics, side by side.

It fetches `GET /modelway/stats` (plugins `admin_api` and `stats`) with the standard library
only and prints one table per route, a row per variant, so the variants of an A/B split can
be compared (with a shared state store, the sums over every worker and instance); `--json`
prints the endpoint's answer as it is. Also runnable on its own:
`python -m modelway.statscli --url http://127.0.0.1:8080`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
STATS_PATH = "/modelway/stats"
KEY_ENV = "MODELWAY_API_KEY"

COLUMNS = (
    "variant",
    "requests",
    "share",
    "errors",
    "error %",
    "mean ms",
    "p95 ms",
    "mean ttft ms",
    "prompt tok",
    "completion tok",
)


class StatsError(Exception):
    """The statistics could not be fetched; the message says why."""


def add_stats_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `stats` command to the `modelway` command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stats", help="show a running gateway's per-route, per-variant statistics"
    )
    _arguments(parser)
    parser.set_defaults(handler=cmd_stats)
    return parser


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"the gateway's base URL (default: {DEFAULT_URL})"
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"a key of the gateway's api_keys, if it has any (default: ${KEY_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the gateway"
    )


def cmd_stats(args: argparse.Namespace) -> int:
    """Fetch and print the statistics; 0 on success, 1 with a message on stderr otherwise."""
    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV)
    try:
        data = fetch_stats(args.url, key, args.timeout)
    except StatsError as exc:
        print(f"modelway stats: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))
    return 0


# ----------------------------------------------------------------------------- fetching


def stats_url(base: str) -> str:
    """The stats endpoint under a gateway URL (a trailing `/v1` is tolerated)."""
    base = base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + STATS_PATH


def fetch_stats(base_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    url = stats_url(base_url)
    if not url.startswith(("http://", "https://")):
        raise StatsError(f"--url must start with http:// or https:// (got {base_url!r})")
    headers = {"accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise StatsError(f"{url} answered HTTP {exc.code}: {_error_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatsError(f"cannot reach {url}: {reason}") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise StatsError(f"{url} did not answer with JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("routes"), dict):
        raise StatsError(f"{url} did not answer with statistics")
    return data


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return str(error.get("message") or error)
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return str(exc.reason)


# ----------------------------------------------------------------------------- rendering


def render(data: dict[str, Any]) -> str:
    """Every route as a table with one row per variant (and a total row when there are more)."""
    routes: dict[str, Any] = data.get("routes") or {}
    header = f"statistics since {data.get('since', '?')}{_scope(data)}"
    if not routes:
        return header + "\nno requests yet"
    blocks = [header]
    for name, route in routes.items():
        blocks.append(_route_block(name, route))
    return "\n\n".join(blocks)


def _scope(data: dict[str, Any]) -> str:
    """Whose numbers these are: every process on a shared state store, or one process."""
    if data.get("store_error"):
        return f" (this process only: {data['store_error']})"
    if data.get("scope") == "shared":
        return " (every process on the shared state store)"
    return ""


def _route_block(name: str, route: dict[str, Any]) -> str:
    variants: dict[str, Any] = route.get("variants") or {}
    rows = [_row(label, stats) for label, stats in variants.items()]
    if len(rows) != 1:
        rows.append(_row("(all)", {**route, "share": 1.0 if route.get("requests") else 0.0}))
    title = (
        f"route {name}: {route.get('requests', 0)} requests, "
        f"{_percent(route.get('error_rate'))} errors"
    )
    return title + "\n" + _table(rows)


def _row(label: str, stats: dict[str, Any]) -> list[str]:
    latency = stats.get("latency_ms") or {}
    ttft = stats.get("ttft_ms") or {}
    return [
        label,
        str(stats.get("requests", 0)),
        _percent(stats.get("share")),
        str(stats.get("errors", 0)),
        _percent(stats.get("error_rate")),
        _millis(latency.get("mean")),
        _millis(latency.get("p95")),
        _millis(ttft.get("mean")),
        str(stats.get("prompt_tokens", 0)),
        str(stats.get("completion_tokens", 0)),
    ]


def _percent(value: object) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "-"


def _millis(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join(line(r) for r in [list(COLUMNS), *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelway stats", description="a running gateway's statistics"
    )
    _arguments(parser)
    return cmd_stats(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
