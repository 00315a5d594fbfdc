"""A real gateway for tests: the same `GatewayServer` that `modelway run` uses, in a thread.

`run_gateway` takes a configuration as a dict, as YAML text or as a file, starts the gateway
on port 0 of 127.0.0.1 (the port is read back from the listening socket), and stops it
gracefully on exit. A gateway that cannot start raises `GatewayStartError` with the errors
it logged (port in use, a broken plugin); a bad configuration raises `ConfigError` before
anything starts. After the stop, every aiohttp session opened on the gateway's event loop
must be closed, or the test fails naming where the session was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import json
import logging
import tempfile
import textwrap
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import yaml
from mitmproxy import certs
from mitmproxy import ctx as mitmproxy_ctx

from modelway import eventloop
from modelway.runner import GatewayServer
from modelway.runtime import Gateway, load_gateway
from modelway.testing.leaks import SessionTracker
from modelway.testing.wait import wait_until

Config = Mapping[str, Any] | str | Path
"""A configuration: a dict, YAML text, or the path of a YAML file."""
ExtraPlugins = Sequence[tuple[str, Any]]
T = TypeVar("T")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class GatewayStartError(RuntimeError):
    """The gateway did not start; the message carries the errors it logged."""


class HttpAnswer(NamedTuple):
    status: int
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RunningGateway:
    server: GatewayServer
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    config_path: Path
    _resources: list[Any] = field(default_factory=list, repr=False)
    _kept: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def closing(self, resource: T) -> T:
        """Close `resource` (an SDK client, a connection: anything with `close()`) before the
        gateway stops; returns it."""
        self._resources.append(resource)
        return resource

    def resource(self, key: Hashable, make: Callable[[], T]) -> T:
        """The resource kept under `key`, made by `make()` at first use and closed before the
        gateway stops. For SDK clients a test asks for again and again: building one costs
        tens of milliseconds (its TLS context), reusing one costs nothing."""
        if key not in self._kept:
            self._kept[key] = self.closing(make())
        return cast(T, self._kept[key])

    def close_resources(self) -> None:
        self._kept.clear()
        while self._resources:
            self._resources.pop().close()

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def gateway(self) -> Gateway:
        return self.server.gateway

    def reload(self, config: Config | None = None) -> None:
        """Write `config` (if given) over the configuration file, then reload it."""
        if config is not None:
            self.config_path.write_text(config_text(config))
        self.call(self.server.reload())

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> HttpAnswer:
        """One raw HTTP request (a dict or list body is sent as JSON); the whole answer."""
        sent_headers = dict(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body)
            sent_headers.setdefault("content-type", "application/json")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=sent_headers)
            response = connection.getresponse()
            data = response.read()
            found = {k.lower(): v for k, v in response.getheaders()}
            return HttpAnswer(response.status, found, data)
        finally:
            connection.close()


def write_config(directory: Path, text: str, name: str = "gateway.yaml") -> Path:
    """Write YAML text (dedented) to `directory/name`; returns the path."""
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def config_text(config: Config) -> str:
    """YAML text for a configuration given as a dict, YAML text, or a file."""
    if isinstance(config, Path):
        return config.read_text()
    if isinstance(config, str):
        return textwrap.dedent(config)
    return yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False)


_ca_stores: dict[tuple[Any, ...], certs.CertStore] = {}


def _share_ca_stores() -> None:
    """Load each CA once per test process: mitmproxy reads and validates the CA's RSA key at
    every start (about 55 ms, most of a test gateway's start-up). A changed CA file (another
    size or modification time) is read again."""
    original = certs.CertStore.from_store
    if getattr(original, "_modelway_shared", False):
        return

    def from_store(
        path: Path | str, basename: str, key_size: int, passphrase: bytes | None = None
    ) -> certs.CertStore:
        ca_file = Path(path) / f"{basename}-ca.pem"
        stat = ca_file.stat() if ca_file.exists() else None
        version = stat and (stat.st_size, stat.st_mtime_ns)
        key = (str(ca_file.resolve()), key_size, passphrase, version)
        if stat is None or key not in _ca_stores:
            store = original(path, basename, key_size, passphrase)
            if stat is None:
                return store
            _ca_stores[key] = store
        return _ca_stores[key]

    from_store._modelway_shared = True  # type: ignore[attr-defined]
    certs.CertStore.from_store = from_store  # type: ignore[method-assign]


class _StartupLog(logging.Handler):
    """Keeps the ERROR records of mitmproxy's and modelway's loggers while a gateway starts."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("mitmproxy", "modelway")):
            self.lines.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def run_gateway(
    config: Config,
    extra_plugins: ExtraPlugins = (),
    *,
    mode: str | None = None,
    directory: Path | None = None,
    prepare: Callable[[Gateway], None] | None = None,
    port: int = 0,
) -> Iterator[RunningGateway]:
    """Start a gateway on an ephemeral port of 127.0.0.1 (or `port`); stop it gracefully on
    exit.

    A dict or YAML text is written to `directory` (a temporary one by default) so that
    reloads work. `prepare` sees the loaded Gateway before it starts (to inject a clock, a
    seeded RNG, a fake sleep into a provider).
    """
    _share_ca_stores()
    with ExitStack() as stack:
        path = _config_file(stack, config, directory)
        plugins = tuple(extra_plugins)
        gateway = load_gateway(str(path), plugins)
        if prepare is not None:
            prepare(gateway)
        server = GatewayServer(
            gateway,
            host="127.0.0.1",
            port=port,
            mode=mode,
            config_path=str(path),
            extra_plugins=plugins,
        )
        tracker = stack.enter_context(SessionTracker())
        with _started(server) as (thread, loop, port):
            running = RunningGateway(server, "127.0.0.1", port, loop, path)
            try:
                yield running
            finally:
                running.close_resources()
        if thread.is_alive():
            raise AssertionError(f"the gateway did not stop within {STOP_TIMEOUT:g}s")
        left = tracker.left_open(loop)
        if left:
            raise AssertionError(
                f"the gateway left {len(left)} aiohttp session(s) open; the first was "
                f"created at:\n{left[0]}"
            )


def _config_file(stack: ExitStack, config: Config, directory: Path | None) -> Path:
    if isinstance(config, Path):
        return config
    if directory is None:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelway-")))
    return write_config(directory, config_text(config))


def _release_aborted(server: GatewayServer) -> None:
    """What a start aborted after listening leaves behind: mitmproxy's logging handlers on the
    root logger and its module-global `ctx.master`, which keep the master, and with it a
    listening socket whose event loop is gone. Collected here, not during a later test."""
    master, server.master = server.master, None
    if master is None:
        return
    _close_listeners(master)
    check = master.addons.get("errorcheck")
    root = logging.getLogger()
    for handler in list(root.handlers):  # its log-event bridge holds the master
        if handler is getattr(check, "logger", None) or getattr(handler, "master", 0) is master:
            root.removeHandler(handler)
    if getattr(mitmproxy_ctx, "master", None) is master:
        for name in ("master", "options", "log"):
            if hasattr(mitmproxy_ctx, name):
                delattr(mitmproxy_ctx, name)
    del master, check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _close_listeners(master: Any) -> None:
    """Close the listening sockets of an aborted master's proxy servers (their event loop is
    gone, so nothing else will; left to the garbage collector they warn in a later test)."""
    proxyserver = master.addons.get("proxyserver")
    for instance in getattr(getattr(proxyserver, "servers", None), "_instances", {}).values():
        for listener in getattr(instance, "_servers", None) or []:
            for sock in getattr(listener, "_sockets", None) or []:
                with contextlib.suppress(OSError):
                    sock.close()


@contextmanager
def _started(
    server: GatewayServer,
) -> Iterator[tuple[threading.Thread, asyncio.AbstractEventLoop, int]]:
    ready = threading.Event()
    found: list[tuple[asyncio.AbstractEventLoop, int]] = []
    failure: list[BaseException] = []

    def on_ready(addresses: list[tuple[str, int]]) -> None:
        found.append((asyncio.get_running_loop(), addresses[0][1]))
        ready.set()

    def main() -> None:
        try:
            eventloop.run(
                server.run(on_ready, handle_signals=False),
                server.gateway.config.gateway.event_loop,
            )
        except BaseException as exc:  # handed to the test thread below
            failure.append(exc)
        finally:
            ready.set()

    def checked() -> bool:
        """mitmproxy's start-up error check, which follows the ready announcement, is done."""
        if failure or not thread.is_alive():
            return True
        check = server.master.addons.get("errorcheck") if server.master else None
        return check is None or check.logger not in logging.getLogger().handlers

    log = _StartupLog()
    logging.getLogger().addHandler(log)
    thread = threading.Thread(target=main, name="modelway-gateway", daemon=True)
    try:
        thread.start()
        started = ready.wait(START_TIMEOUT) and bool(found)
        started = started and wait_until(checked, timeout=START_TIMEOUT) and not failure
    finally:
        logging.getLogger().removeHandler(log)
    if not started:
        thread.join(STOP_TIMEOUT)
        reason = "; ".join(log.lines) or repr(failure[0] if failure else "no answer")
        failure.clear()  # its traceback holds the aborted master
        _release_aborted(server)
        raise GatewayStartError(f"the gateway did not start: {reason}")
    loop, port = found[0]
    try:
        yield thread, loop, port
    finally:
        with contextlib.suppress(RuntimeError):  # the loop ended: the gateway stopped itself
            loop.call_soon_threadsafe(server.request_stop)
        thread.join(STOP_TIMEOUT)
