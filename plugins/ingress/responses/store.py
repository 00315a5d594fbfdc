"""Stored responses: what `previous_response_id` and `GET /v1/responses/{id}` need.

One record per response, in the gateway's `StateStore` (`gateway.services`, e.g. SQLite or
Redis from the `state:` configuration) or, when none is provided, in a `MemoryStore` of its
own. A record holds its owner, the backend that answered and either the response with its
input items (the gateway made the answer, or the backend does not keep it) or only a pointer
(an OpenAI backend keeps the response itself, and its own API answers for it). Every record
has a TTL; this process also keeps its records under a count and byte bound, the oldest
going first.

Writes start when the answer is made and finish in the background; a read of an id whose
write is still under way waits for it, so a client's next turn always finds its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from modelway import jsonx
from modelway.errors import GatewayError, bad_request
from modelway.services import Services
from modelway.state import MemoryStore, StateStore, StateUnavailable

logger = logging.getLogger("modelway.responses")

Json = dict[str, Any]
PREFIX = "responses:"
MAX_CHAIN = 10_000
"""The longest `previous_response_id` chain that is followed (a guard, not a limit in use)."""


class ResponseStore:
    """The records of one gateway's responses (a service that outlives reloads)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.ttl_seconds: float | None = 30 * 86400
        self.max_responses = 10_000
        self.max_bytes = 256 * 1024 * 1024
        self._memory = MemoryStore()
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._bytes = 0

    def configure(self, ttl_seconds: float | None, max_responses: int, max_bytes: int) -> None:
        self.ttl_seconds, self.max_responses, self.max_bytes = ttl_seconds, max_responses, max_bytes

    @property
    def backing(self) -> StateStore:
        return self.services.get(StateStore) or self._memory

    # ------------------------------------------------------------------------- writing

    def put(self, response_id: str, record: Json) -> None:
        """Store a record (encoded now, written in the background)."""
        data = jsonx.dumps(record)
        if len(data) > self.max_bytes:
            logger.warning("response %s is larger than the store's bound; not stored", response_id)
            return
        task = asyncio.get_running_loop().create_task(self._write(response_id, data))
        self._pending[response_id] = task
        task.add_done_callback(lambda _: self._settled(response_id, task))

    def _settled(self, response_id: str, task: asyncio.Task[None]) -> None:
        if self._pending.get(response_id) is task:
            del self._pending[response_id]

    async def _write(self, response_id: str, data: bytes) -> None:
        try:
            await self.backing.set(PREFIX + response_id, data, self.ttl_seconds)
        except Exception as exc:  # a background write must never fail silently or loudly
            logger.warning("storing response %s failed (%s)", response_id, type(exc).__name__)
            return
        self._account(response_id, len(data))
        for old in self._over_bound():
            await self._forget(old)

    def _account(self, response_id: str, size: int) -> None:
        self._bytes += size - self._sizes.pop(response_id, 0)
        self._sizes[response_id] = size

    def _over_bound(self) -> list[str]:
        """The oldest records to let go of until the bound holds (usually none)."""
        out: list[str] = []
        count, total = len(self._sizes), self._bytes
        for response_id, size in self._sizes.items():  # oldest first
            if count <= self.max_responses and total <= self.max_bytes:
                break
            out.append(response_id)
            count, total = count - 1, total - size
        return out

    async def _forget(self, response_id: str) -> None:
        self._bytes -= self._sizes.pop(response_id, 0)
        try:
            await self.backing.delete(PREFIX + response_id)
        except Exception as exc:
            logger.warning("evicting response %s failed (%s)", response_id, type(exc).__name__)

    # ------------------------------------------------------------------------- reading

    async def get(self, response_id: str, owner: str | None) -> Json | None:
        """The record, or None when there is none for this owner (another owner's record
        is not found either, so ids tell nothing)."""
        pending = self._pending.get(response_id)
        if pending is not None:
            await asyncio.shield(pending)
        try:
            data = await self.backing.get(PREFIX + response_id)
        except StateUnavailable:
            raise GatewayError(
                503, "the response store is unavailable", "server_error", "store_unavailable"
            ) from None
        record = _decoded(data)
        if record is None or record.get("owner") != owner:
            return None
        return record

    async def delete(self, response_id: str) -> bool:
        pending = self._pending.get(response_id)
        if pending is not None:
            await asyncio.shield(pending)
        self._bytes -= self._sizes.pop(response_id, 0)
        return await self.backing.delete(PREFIX + response_id)

    async def conversation(self, record: Json, owner: str | None) -> list[Json]:
        """The items a stored response stands for: every earlier turn's input and output,
        then its own, in order."""
        turns: list[list[Json]] = []
        for _ in range(MAX_CHAIN):
            response = record.get("response") or {}
            turns.append([*record.get("input", []), *response.get("output", [])])
            previous = record.get("previous")
            if not isinstance(previous, str):
                break
            found = await self.get(previous, owner)
            if found is None or found.get("kept"):
                raise bad_request(
                    f"the conversation continues response '{previous}', which is no longer "
                    "stored",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            record = found
        return [item for turn in reversed(turns) for item in turn]


def _decoded(data: bytes | None) -> Json | None:
    if data is None:
        return None
    try:
        record = jsonx.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
