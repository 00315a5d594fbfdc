"""The governance commands, over a running gateway's admin API (standard library only):

    modelway keys create --consumer NAME [--team T] [--kind service] [--models G ...] ...
    modelway keys list | show ID | revoke ID | rotate ID [--grace SECONDS]
    modelway keys hash            # reads a key on stdin, prints its sha256: form for YAML
    modelway spend [--by key|team|model|day] [--since DAY] [--until DAY]

They talk to `--url` (default http://127.0.0.1:8080) with `--admin-key` (default
$MODELWAY_ADMIN_KEY), so a key created on one instance is in the shared store for all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
KEY_ENV = "MODELWAY_ADMIN_KEY"


class AdminError(Exception):
    """The admin API could not be reached or refused; the message says why."""


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    key = args.admin_key if args.admin_key is not None else os.environ.get(KEY_ENV)
    headers = {"content-type": "application/json", "accept": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    url = args.url.rstrip("/").removesuffix("/v1") + path
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise AdminError(f"{url} answered HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AdminError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the gateway (default {DEFAULT_URL})")
    parser.add_argument("--admin-key", default=None, help=f"an admin key (default ${KEY_ENV})")
    parser.add_argument("--timeout", type=float, default=10.0)


def add_parsers(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list, show, revoke or rotate API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key (shown once)")
    create.add_argument("--consumer", required=True)
    create.add_argument("--kind", choices=("user", "service"), default="user")
    create.add_argument("--team")
    create.add_argument("--name")
    create.add_argument("--models", nargs="+", help="model globs (default: all)")
    create.add_argument("--routes", nargs="+", help="route globs (default: all)")
    create.add_argument("--expires", help="ISO date or time (UTC)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--budget", type=float, help="USD per --budget-window")
    create.add_argument("--budget-window", default="month", help="day, week, month or <N>h")
    create.add_argument("--meta", action="append", default=[], help="KEY=VALUE metadata")
    for name in ("show", "revoke", "rotate"):
        one = actions.add_parser(name, help=f"{name} a key by its id")
        one.add_argument("id")
        if name == "rotate":
            one.add_argument("--grace", type=float, default=0.0,
                             help="seconds the old key keeps working (default: revoked now)")
    actions.add_parser("list", help="every key (no secrets)")
    actions.add_parser("hash", help="print the sha256: form of a key read from stdin")
    for action in actions.choices.values():
        _common(action)
    keys.set_defaults(handler=cmd_keys)
    spend = commands.add_parser("spend", help="spend by key, team, model or day")
    spend.add_argument("--by", choices=("key", "team", "model", "day"), default="key")
    spend.add_argument("--since", default="", help="first day (YYYY-MM-DD)")
    spend.add_argument("--until", default="", help="last day (YYYY-MM-DD)")
    spend.add_argument("--json", action="store_true")
    _common(spend)
    spend.set_defaults(handler=cmd_spend)


def _create_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"consumer": args.consumer, "kind": args.kind}
    for name in ("team", "name", "models", "routes", "expires"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    limits = {k: v for k, v in (("requests_per_minute", args.rpm),
                                ("tokens_per_minute", args.tpm)) if v}
    if limits:
        body["limits"] = limits
    if args.budget:
        body["budget"] = {"usd": args.budget, "window": args.budget_window}
    meta = dict(item.partition("=")[::2] for item in args.meta)
    if meta:
        body["metadata"] = meta
    return body


def cmd_keys(args: argparse.Namespace) -> int:
    try:
        return _keys(args)
    except AdminError as exc:
        print(f"modelway keys: {exc}", file=sys.stderr)
        return 1


def _keys(args: argparse.Namespace) -> int:
    action = args.action
    if action == "hash":
        secret = sys.stdin.readline().strip()
        print("sha256:" + hashlib.sha256(secret.encode()).hexdigest())
        return 0
    if action == "list":
        for key in call(args, "GET", "/modelway/keys")["keys"]:
            print(f"{key['id']:<18} {key['state']:<8} {key.get('kind', ''):<8} "
                  f"{key.get('consumer', ''):<20} team={key.get('team', '-')} "
                  f"source={key.get('source', '')}")
        return 0
    if action == "create":
        made = call(args, "POST", "/modelway/keys", _create_body(args))
    elif action == "rotate":
        made = call(args, "POST", f"/modelway/keys/{args.id}/rotate",
                    {"grace_seconds": args.grace})
    else:
        method = "GET" if action == "show" else "DELETE"
        print(json.dumps(call(args, method, f"/modelway/keys/{args.id}"), indent=2))
        return 0
    secret = made.pop("key")
    print(json.dumps(made, indent=2))
    print(f"\nkey (shown once, store it now): {secret}", file=sys.stderr)
    print(secret)
    return 0


def cmd_spend(args: argparse.Namespace) -> int:
    query = f"?by={args.by}&since={args.since}&until={args.until}"
    try:
        data = call(args, "GET", "/modelway/spend" + query)
    except AdminError as exc:
        print(f"modelway spend: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{args.by:<28} {'usd':>12} {'requests':>9} {'prompt':>9} {'completion':>10}")
    rows = {**data["rows"], "(total)": data["total"]}
    for name, row in rows.items():
        print(f"{name:<28} {row['usd']:>12.6f} {row['requests']:>9} {row['prompt']:>9} "
              f"{row['completion']:>10}")
    return 0
