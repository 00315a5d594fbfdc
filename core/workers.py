"""`modelway run --workers N`: N gateway processes on one port, supervised by a parent.

The parent validates the configuration, refuses to start without shared state (several
workers need `state: {store: redis}`: limits, budgets and created keys must be one for all),
and starts N workers (`modelway run` again, with the same options). Each worker binds the same
address with SO_REUSEPORT, so the kernel spreads connections over them; the parent holds the
port with a bound socket that does not listen, so `--port 0` works too. SIGTERM or SIGINT
stops every worker gracefully (each drains its requests); SIGHUP reloads every worker; a
worker that dies is started again. The parent prints one "listening on" line once every
worker listens.

The workers' metrics (the `metrics` plugin) are one set: the parent gives every worker the
same `PROMETHEUS_MULTIPROC_DIR` (a fresh directory unless the environment names one), each
worker writes its values there, and `/metrics` on any worker adds them all up. A dead worker's
live gauges are dropped when it is replaced; the parent removes the directory it made. The
workers share one secret for the upload URLs they sign (`modelway.followups`), so an upload
started on one worker goes on on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from modelway.errors import ConfigError
from modelway.followups import worker_secret
from modelway.runtime import Gateway

logger = logging.getLogger("modelway.workers")

WORKER_ENV = "MODELWAY_WORKER"
READY_FD_ENV = "MODELWAY_READY_FD"
RESTART_PAUSE_SECONDS = 1.0
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir() -> tuple[str, bool]:
    """The workers' shared metrics directory, and whether the parent made it."""
    given = os.environ.get(METRICS_DIR_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        return given, False
    return tempfile.mkdtemp(prefix="modelway-metrics-"), True


def forget_worker_metrics(directory: str, pid: int) -> None:
    """Drop a dead worker's live gauges (in-flight requests) from the shared metrics."""
    for name in os.listdir(directory):
        if name.startswith(("gauge_live", "gauge_liveall")) and name.endswith(f"_{pid}.db"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))


def check_shared_state(gateway: Gateway, workers: int) -> None:
    if workers > 1 and gateway.config.state.store != "redis":
        raise ConfigError(
            f"{gateway.source.name}: --workers {workers} needs state that the workers share: "
            "set `state: {store: redis, url: redis://...}` (limits, budgets and created keys "
            "must be one for all workers), or run one worker"
        )


def enable_reuse_port(host: str, port: int) -> None:
    """Make this process's listener for (host, port) share the port (SO_REUSEPORT).

    mitmproxy binds with `asyncio.start_server` and has no option for it; a worker passes
    `reuse_port=True` for the gateway's own address only.
    """
    original = asyncio.start_server

    @functools.wraps(original)
    async def start_server(handler: Any, where: Any = None, at: Any = None, **kw: Any) -> Any:
        if at == port and (where or "") in (host, ""):
            kw.setdefault("reuse_port", True)
        return await original(handler, where, at, **kw)

    asyncio.start_server = start_server  # type: ignore[assignment]


def announce_ready() -> None:
    """A worker tells its parent that it listens (a byte on the pipe the parent gave it)."""
    fd = os.environ.get(READY_FD_ENV)
    if fd:
        try:
            os.write(int(fd), b"r")
            os.close(int(fd))
        except OSError:
            pass


def _hold_port(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    return holder


class Supervisor:
    """Starts, restarts, reloads and stops the workers."""

    def __init__(self, argv: Sequence[str], workers: int, host: str, port: int) -> None:
        self.argv = list(argv)
        self.count = workers
        self.host = host
        self.holder = _hold_port(host, port)
        self.port = self.holder.getsockname()[1]
        self.children: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.stopping = False
        self.metrics_dir, self._own_metrics_dir = metrics_dir()

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "modelway.cli", "run", *self.argv,
                "--host", self.host, "--port", str(self.port), "--workers", "1"]

    def _spawn(self, index: int) -> int:
        read, write = os.pipe()
        env = {**os.environ, WORKER_ENV: str(index), READY_FD_ENV: str(write),
               METRICS_DIR_ENV: self.metrics_dir, **worker_secret()}
        self.children[index] = subprocess.Popen(self._command(), env=env, pass_fds=(write,),
                                                stdin=subprocess.DEVNULL)
        os.close(write)
        return read

    def run(self, on_ready: Callable[[str, int], None]) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop())
        signal.signal(signal.SIGHUP, lambda *_: self._send(signal.SIGHUP))
        pipes = [self._spawn(i) for i in range(self.count)]
        ready = sum(len(os.read(fd, 1)) for fd in pipes)
        for fd in pipes:
            os.close(fd)
        if ready == self.count and not self.stopping:
            on_ready(self.host, self.port)
        return self._watch()

    def _watch(self) -> int:
        while True:
            for index, child in enumerate(self.children):
                if child is None or child.poll() is None:
                    continue
                if self.stopping:
                    self.children[index] = None
                    continue
                logger.error("worker %d exited with %s; starting it again", index,
                             child.returncode)
                forget_worker_metrics(self.metrics_dir, child.pid)
                time.sleep(RESTART_PAUSE_SECONDS)
                os.close(self._spawn(index))
            if self.stopping and all(c is None for c in self.children):
                self.holder.close()
                if self._own_metrics_dir:
                    shutil.rmtree(self.metrics_dir, ignore_errors=True)
                return 0
            time.sleep(0.1)

    def _send(self, number: int) -> None:
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(number)

    def _stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self._send(signal.SIGTERM)
