"""The PII guard's worker processes, spoken to over pipes from the event loop itself.

Each worker is a child process (this module's `main`) reading calls from its stdin and
writing results to its stdout, as length-prefixed pickles. The gateway side is asyncio only:
a call is one pickle and one pipe write, and a reader task per worker resolves the call's
future when its result arrives. No helper thread, no multiprocessing queue, and no wake-up
pipe sits between a stream and its analysis, which is what `ProcessPoolExecutor` costs per
call (three threads' hand-offs and four pipe writes). A call goes to the worker with the
fewest calls waiting for it.

A worker that dies fails its calls in flight (`WorkerGone`) and is started again on the next
call. The workers build their analyzers when they start (`init_worker`), not on a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

logger = logging.getLogger("modelway.pii_guard")

T = TypeVar("T")
_LENGTH = struct.Struct("!I")
_MAIN = "from modelway.plugins.policies.pii_guard.workers import main; main()"


class WorkerGone(Exception):
    """A worker process stopped while it had a call."""


class _Worker:
    """One child process and the calls it has in flight."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self.alive = True
        self.reader = asyncio.ensure_future(self._read())

    def send(self, call_id: int, frame: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        assert self.process.stdin is not None
        self.calls[call_id] = future
        self.process.stdin.write(frame)
        return future

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                size = _LENGTH.unpack(await stdout.readexactly(_LENGTH.size))[0]
                call_id, ok, value = pickle.loads(await stdout.readexactly(size))
                future = self.calls.pop(call_id, None)
                if future is None or future.done():
                    continue  # its caller gave up (a timeout)
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError):
            pass
        finally:
            self._gone()

    def _gone(self) -> None:
        self.alive = False
        calls, self.calls = self.calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(WorkerGone())

    def stop(self) -> None:
        self.alive = False
        self.reader.cancel()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self._gone()


class ProcessWorkers:
    """`count` worker processes; `call` runs a module-level function in one of them."""

    def __init__(self, count: int, init: Callable[..., None], init_args: tuple[Any, ...]):
        self.count = count
        self._init = (init, init_args)
        self._workers: list[_Worker | None] = [None] * count
        self._starting: dict[int, asyncio.Task[_Worker]] = {}
        self._stopped: list[_Worker] = []
        self._load = [0] * count
        """Calls per worker that are waiting for it or for their result."""
        self._next_id = 0

    def start(self) -> None:
        """Start every worker now (they build their analyzers), when a loop runs."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # they start on first use
        for index in range(self.count):
            self._spawning(index)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        index = self._load.index(min(self._load))
        self._load[index] += 1
        try:
            worker = self._workers[index]
            if worker is None or not worker.alive:
                worker = await self._spawning(index)
            self._next_id += 1
            frame = pickle.dumps((self._next_id, function, args), pickle.HIGHEST_PROTOCOL)
            result: T = await worker.send(self._next_id, _LENGTH.pack(len(frame)) + frame)
            return result
        finally:
            self._load[index] -= 1

    def _spawning(self, index: int) -> asyncio.Task[_Worker]:
        task = self._starting.get(index)
        if task is None:
            task = self._starting[index] = asyncio.ensure_future(self._spawn(index))
            task.add_done_callback(lambda _: self._starting.pop(index, None))
        return task

    async def _spawn(self, index: int) -> _Worker:
        old = self._workers[index]
        if old is not None:
            old.stop()
            self._stopped.append(old)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MAIN,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdin is not None
        setup = pickle.dumps(self._init, pickle.HIGHEST_PROTOCOL)
        process.stdin.write(_LENGTH.pack(len(setup)) + setup)
        worker = self._workers[index] = _Worker(process)
        return worker

    def close(self) -> None:
        """Stop every worker (their calls in flight fail); `wait_closed` reaps them."""
        for task in list(self._starting.values()):
            task.cancel()
        for worker in self._workers:
            if worker is not None:
                worker.stop()
                self._stopped.append(worker)
        self._workers = [None] * self.count

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until the stopped workers have exited (their pipes closed)."""
        stopped, self._stopped = self._stopped, []
        for worker in stopped:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(worker.process.wait(), timeout)


# --------------------------------------------------------------------------- the worker side


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    size = _LENGTH.unpack(head)[0]
    body = stream.read(size)
    return body if len(body) == size else None


def _answer(stream: BinaryIO, call_id: int, function: Callable[..., Any], args: Any) -> None:
    try:
        message = (call_id, True, function(*args))
    except Exception as exc:  # the caller gets the error, the worker keeps serving
        message = (call_id, False, exc)
    try:
        frame = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        frame = pickle.dumps((call_id, False, RuntimeError(f"unpicklable result: {exc!r}")))
    stream.write(_LENGTH.pack(len(frame)) + frame)
    stream.flush()


def main() -> None:
    """A worker: the setup call, then calls from stdin until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway stops its workers itself
    calls = sys.stdin.buffer
    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the frames
    setup = _read_frame(calls)
    if setup is None:
        return
    init, init_args = pickle.loads(setup)
    init(*init_args)
    while (frame := _read_frame(calls)) is not None:
        call_id, function, args = pickle.loads(frame)
        _answer(results, call_id, function, args)
