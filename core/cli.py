"""The `modelway` command: run the gateway, check a configuration, list plugins."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from modelway import __version__, eventloop
from modelway.admincli import add_parsers as add_admin_parsers
from modelway.errors import ConfigError
from modelway.pluginmanager import CORE_PLUGINS, available_plugins, enabled_names
from modelway.runtime import Gateway, load_gateway
from modelway.statscli import add_stats_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"modelway: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelway", description="An AI gateway on mitmproxy.")
    parser.add_argument("--version", action="version", version=f"modelway {__version__}")
    commands = parser.add_subparsers(dest="command")

    run = commands.add_parser("run", help="run the gateway")
    _config_arg(run, required=False)
    run.add_argument("--host", help="listen address (default: from the config, 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default: from the config, 8080)")
    run.add_argument("--mode", choices=("reverse", "forward"), help="proxy mode")
    run.add_argument(
        "--watch",
        action="store_true",
        help="reload the configuration when its file changes (also on SIGHUP)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="gateway processes on the one port (more than 1 needs state: {store: redis})",
    )
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check", help="validate a configuration and show what it sets up")
    _config_arg(check, required=True)
    check.set_defaults(handler=cmd_check)

    ca = commands.add_parser("ca", help="create (if needed) and show the forward proxy's CA")
    _config_arg(ca, required=False)
    ca.set_defaults(handler=cmd_ca)

    add_stats_parser(commands)
    add_admin_parsers(commands)

    plugins = commands.add_parser("plugins", help="list available plugins")
    _config_arg(plugins, required=False)
    plugins.set_defaults(handler=cmd_plugins)
    return parser


def _config_arg(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "-c",
        "--config",
        required=required,
        help="YAML configuration file (default: the packaged config/gateway.yaml)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from modelway import workers
    from modelway.runner import GatewayServer

    gateway = load_gateway(args.config)
    workers.check_shared_state(gateway, args.workers)
    worker = os.environ.get(workers.WORKER_ENV)
    if worker is None:
        for notice in gateway.notices:
            logging.getLogger("modelway").info(notice)
        forward = forward_notice(gateway, args.mode or gateway.config.gateway.mode)
        if forward:
            logging.getLogger("modelway").warning(forward)
    if args.workers > 1:
        return _run_workers(args, gateway)
    server = GatewayServer(
        gateway,
        host=args.host,
        port=args.port,
        mode=args.mode,
        config_path=args.config,
        watch=args.watch,
    )

    if worker is not None:
        workers.enable_reuse_port(server.host, server.port)

    def ready(addresses: list[tuple[str, int]]) -> None:
        if worker is not None:
            workers.announce_ready()
            return
        for host, port in addresses:
            _listening(host, port, server.mode)

    eventloop.run(server.run(ready), gateway.config.gateway.event_loop)
    return 0


def _listening(host: str, port: int, mode: str, extra: str = "") -> None:
    print(
        f"modelway {__version__} listening on http://{_hostport(host, port)} ({mode} mode{extra})",
        file=sys.stderr,
        flush=True,
    )


def _run_workers(args: argparse.Namespace, gateway: Gateway) -> int:
    from modelway.workers import Supervisor

    settings = gateway.config.gateway
    argv = [
        *(["-c", args.config] if args.config else []),
        *(["--mode", args.mode] if args.mode else []),
        *(["--watch"] if args.watch else []),
    ]
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    supervisor = Supervisor(argv, args.workers, host, port)
    mode = args.mode or settings.mode
    return supervisor.run(lambda h, p: _listening(h, p, mode, f", {args.workers} workers"))


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cmd_check(args: argparse.Namespace) -> int:
    gateway = load_gateway(args.config)
    print(describe(gateway))
    return 0


def describe(gateway: Gateway) -> str:
    settings = gateway.config.gateway
    lines = [
        f"configuration {gateway.source.name} is valid",
        f"listen: {settings.host}:{settings.port} ({settings.mode} mode)",
        "plugins: " + ", ".join(gateway.plugin_names),
        f"state: {gateway.config.state.store}"
        + (
            f" (directory {gateway.config.state.directory})"
            if gateway.config.state.directory
            else ""
        ),
        "backends:",
    ]
    for name, backend in gateway.backends.items():
        where = backend.config.base_url or "(provider default)"
        model = backend.config.model or "(client's model)"
        lines.append(f"  {name}: provider={backend.provider_name} model={model} url={where}")
    lines.append("routes:")
    for route in gateway.routes:
        match = route.config.match
        targets = ", ".join(f"{t.backend.name}(weight {t.weight:g})" for t in route.targets)
        policies = ", ".join(type(p).__name__ for p in route.policies) or "none"
        lines.append(
            f"  {route.name}: model={match.models} path={match.path or '*'} -> "
            f"{targets}; policies: {policies}"
        )
        if route.groups:
            groups = " then ".join("[" + ", ".join(b.name for b in g) + "]" for g in route.groups)
            lines.append(f"    failover: {groups}")
    timeouts = settings.timeouts
    lines.append(
        "upstream limits: "
        + ", ".join(
            f"{name} {_seconds(getattr(timeouts, name))}"
            for name in ("connect", "first_byte", "idle", "total")
        )
        + f"; whole answers up to {settings.max_answer_bytes} bytes"
    )
    lines.extend(f"note: {n}" for n in gateway.notices)
    forward = forward_notice(gateway, settings.mode)
    if forward:
        lines.append(f"note: {forward}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:g}s"


def forward_notice(gateway: Gateway, mode: str) -> str | None:
    """What forward mode does with plain HTTP to hosts it does not intercept."""
    settings = gateway.config.gateway
    if mode != "forward":
        return None
    if settings.plain_http == "deny":
        return (
            "forward mode: plain HTTP to hosts that are not LLM hosts is refused "
            "(gateway.plain_http: deny)"
        )
    if settings.proxy_auth is None:
        return (
            "forward mode: plain HTTP to any host is passed (gateway.plain_http: pass) "
            "and gateway.proxy_auth is not set: this is an open HTTP proxy"
        )
    return "forward mode: plain HTTP to any host is passed for clients with proxy_auth"


def cmd_ca(args: argparse.Namespace) -> int:
    from modelway.runner import ensure_ca

    cert = ensure_ca(load_gateway(args.config))
    print(f"""CA certificate: {cert}
(the private key beside it is readable by its owner only; keep it that way)

Trust it for one process, then point the application at the gateway:
  export HTTPS_PROXY=http://127.0.0.1:8080
  export SSL_CERT_FILE={cert}           # Python (httpx, the openai/anthropic/google SDKs)
  export REQUESTS_CA_BUNDLE={cert}      # Python requests
  export NODE_EXTRA_CA_CERTS={cert}     # Node.js

Or trust it system-wide (Debian/Ubuntu):
  sudo cp {cert} /usr/local/share/ca-certificates/modelway.crt && sudo update-ca-certificates

SSL_CERT_FILE replaces the default bundle: to keep trusting public CAs too, point it at a
bundle that holds both (cat /etc/ssl/certs/ca-certificates.crt {cert} > bundle.pem).""")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    sources = available_plugins()
    if args.config:
        enabled = set(load_gateway(args.config).plugin_names)
    else:
        enabled = set(enabled_names(None))
    print(f"{'name':<14} {'status':<10} origin")
    for name, source in sources.items():
        status = "core" if name in CORE_PLUGINS else ("enabled" if name in enabled else "-")
        print(f"{name:<14} {status:<10} {source.origin} ({source.target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
