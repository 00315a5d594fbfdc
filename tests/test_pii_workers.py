"""The PII guard's worker processes (policies/pii_guard/workers.py), real child processes:
calls and their results, errors, a worker that dies in a call or while idle, and closing."""

from __future__ import annotations

import asyncio
import os

import pytest

from modelway.plugins.policies.pii_guard.workers import ProcessWorkers, WorkerGone


def _nothing() -> None:
    """The workers' set-up call."""


def _pid() -> int:
    return os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(3)


async def _with_workers(count: int, body):  # type: ignore[no-untyped-def]
    workers = ProcessWorkers(count, _nothing, ())
    workers.start()
    try:
        return await asyncio.wait_for(body(workers), 60)
    finally:
        workers.close()
        await workers.wait_closed()


def test_calls_run_in_the_workers_and_errors_come_back():
    async def body(workers: ProcessWorkers) -> tuple[set[int], str]:
        pids = set(await asyncio.gather(*(workers.call(_pid) for _ in range(20))))
        with pytest.raises(ValueError) as raised:
            await workers.call(_fail, "bad input")
        return pids, str(raised.value)

    pids, message = asyncio.run(_with_workers(2, body))
    assert os.getpid() not in pids and len(pids) == 2  # spread over both workers
    assert message == "bad input"


def test_a_worker_that_dies_fails_its_call_and_is_started_again():
    async def body(workers: ProcessWorkers) -> tuple[int, int]:
        before = await workers.call(_pid)
        with pytest.raises(WorkerGone):
            await workers.call(_die)
        after = await workers.call(_pid)
        return before, after

    before, after = asyncio.run(_with_workers(1, body))
    assert before != after


def test_a_worker_killed_while_idle_is_replaced_without_a_failed_call():
    async def body(workers: ProcessWorkers) -> tuple[int, int]:
        before = await workers.call(_pid)
        os.kill(before, 9)
        for _ in range(500):  # its reader sees the pipe close
            worker = workers._workers[0]
            if worker is None or not worker.alive:
                break
            await asyncio.sleep(0.01)
        return before, await workers.call(_pid)

    before, after = asyncio.run(_with_workers(1, body))
    assert before != after


def test_closing_stops_the_processes():
    async def body(workers: ProcessWorkers) -> int:
        pid: int = await workers.call(_pid)
        workers.close()
        await workers.wait_closed()
        return pid

    pid = asyncio.run(_with_workers(1, body))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
