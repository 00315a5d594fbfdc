"""Shared parts of the benchmarks: servers in their own processes, CPU accounting, statistics.

Every benchmark here measures targets side by side in one run and reports ratios; nothing in
this module times anything on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"


def process_cpu(pid: int) -> float | None:
    """User+system CPU seconds of a process (Linux /proc), or None where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float | None:
    """CPU seconds all processes used since boot (user+nice+system of /proc/stat), or None.

    Interrupt and softirq time is left out: loopback traffic of the benchmark itself lands
    there, and it is not another process competing for the cores.
    """
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:4]]
    except (OSError, ValueError):
        return None
    return sum(values) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float | None]:
    snapshot = {name: process_cpu(pid) for name, pid in pids.items()}
    snapshot["client"] = time.process_time()
    snapshot["wall"] = time.perf_counter()
    snapshot["machine"] = machine_busy()
    return snapshot


def cpu_usage(
    before: dict[str, float | None], after: dict[str, float | None]
) -> dict[str, float | None]:
    """CPU seconds per process between two snapshots, and the rest of the machine's."""
    used = {name: delta(before[name], after[name]) for name in before if name != "wall"}
    machine = used.pop("machine")
    ours = [v for v in used.values() if v is not None]
    complete = machine is not None and len(ours) == len(used)
    used["other"] = max(0.0, machine - sum(ours)) if complete and machine is not None else None
    used["wall"] = delta(before["wall"], after["wall"])
    return used


def delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"benchmarks: cannot find '{name}' next to {sys.executable} or on PATH")
    return found


@dataclass
class Server:
    name: str
    command: list[str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self, stdout: int | IO[bytes] | None = None) -> None:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self.log if stdout is None else stdout,
            stderr=self.log,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll the port until it accepts connections; fail early if the process exits."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n" + self.log_tail()
                )
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not listen on port {self.port} in {timeout}s:\n" + self.log_tail()
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        if self.log is not None:
            self.log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()


def percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))  # nearest-rank method
    return ordered[int(rank) - 1]


def take_request(buffer: bytearray) -> bytes | None:
    """The body of the first whole HTTP/1.1 request in `buffer` (removed from it), or None
    while it is still incomplete (a Content-Length body; enough for the benchmarks' clients)."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in bytes(buffer[:end]).lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if len(buffer) < end + 4 + length:
        return None
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return body


def asks_stream(body: bytes) -> bool:
    """Whether a JSON request body asks for a stream."""
    return b'"stream":true' in body.replace(b" ", b"")


def load_main(
    doc: str,
    benchmark: Callable[[argparse.Namespace, Any], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The command line the wrk-driven throughput benchmarks share: run, then print the
    report (rendered, or as JSON with --json). `options` adds a benchmark's own."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    if options is not None:
        options(parser)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = benchmark(args, sys.stderr)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0
