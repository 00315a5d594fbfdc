"""The per-request stream transformer: provider bytes in, client stream bytes out.

Decodes the provider's stream into canonical chunks, records usage and time to first token,
drops the usage the gateway asked for on the client's behalf, runs the route's stream
filters, and encodes for the client's API, chunk for chunk.
"""

from __future__ import annotations

import time
from typing import Any

from modelway.canonical import Usage
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.extension import StreamDecoder, StreamEncoder, StreamFilter


def error_from_chunk(chunk: dict[str, Any]) -> GatewayError:
    """A decoder's in-order error chunk (`{"error": {...}}`) as a GatewayError.

    The chunk may carry `type`, `code` and an HTTP-like `status` (e.g. 529 overloaded);
    without a status the failure counts as a bad gateway (502).
    """
    error = chunk.get("error")
    fields = error if isinstance(error, dict) else {}
    message, kind, code, status = (fields.get(k) for k in ("message", "type", "code", "status"))
    return GatewayError(
        status if isinstance(status, int) and 400 <= status <= 599 else 502,
        message if isinstance(message, str) and message else "the backend's stream failed",
        kind if isinstance(kind, str) and kind else "server_error",
        code if isinstance(code, str) else "upstream_stream_error",
    )


class StreamPipeline:
    def __init__(
        self,
        ctx: RequestContext,
        decoder: StreamDecoder,
        filters: list[StreamFilter],
        encoder: StreamEncoder,
    ) -> None:
        assert ctx.request is not None
        self.ctx = ctx
        self.decoder = decoder
        self.filters = filters
        self.encoder = encoder
        self.keep_usage = ctx.request.client_wants_usage
        self.error: GatewayError | None = None
        """Set when the upstream stream failed; the bytes returned so far are still valid."""
        self.text: list[str] = []
        """The answer's text so far (choice 0, before filters), for a continuation."""
        self.has_tool_calls = False
        self._usage_before = Usage()
        self._continuing = False

    @property
    def can_continue(self) -> bool:
        """Whether another backend could pick the answer up where it broke off."""
        request = self.ctx.request
        single = request is None or request.body.get("n") in (None, 1)
        return single and not self.has_tool_calls and bool(self.text)

    def resume(self, decoder: StreamDecoder) -> None:
        """Carry on in the same client stream with another backend's stream."""
        self.decoder = decoder
        self.error = None
        self._usage_before = self.ctx.usage or self._usage_before
        self._continuing = True

    async def feed(self, data: bytes) -> bytes:
        """Client bytes for `data`; check `error` afterwards."""
        if self.error is not None:
            return b""
        return await self._emit(self.decoder.feed(data))

    async def close(self) -> bytes:
        """End of the upstream stream: flush held text, then the stream's end marker.

        If the stream turns out broken (see `error`), held text is dropped, not released.
        """
        out = await self._emit(self.decoder.close())
        if self.error is not None:
            return out
        tail: list[dict[str, Any]] = []
        for stream_filter in self.filters:
            tail = await _through(stream_filter, tail) + await stream_filter.on_end()
        if tail and self.ctx.timings.first_byte is None:
            self.ctx.timings.first_byte = time.monotonic()
        return out + b"".join(self.encoder.encode(c) for c in tail) + self.encoder.end()

    async def _emit(self, chunks: list[dict[str, Any]]) -> bytes:
        if not chunks:
            return b""
        ready = []
        for chunk in chunks:
            if "error" in chunk and not chunk.get("choices"):
                self.error = error_from_chunk(chunk)
                break
            self._observe(chunk)
            if self._take_usage(chunk):
                ready.append(chunk)
        for stream_filter in self.filters:
            ready = await _through(stream_filter, ready)
        if ready and self.ctx.timings.first_byte is None:
            self.ctx.timings.first_byte = time.monotonic()
        return b"".join(self.encoder.encode(c) for c in ready)

    def _observe(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if self._continuing:
                delta.pop("role", None)  # the client already has the answer's first chunk
            if delta.get("tool_calls"):
                self.has_tool_calls = True
            if choice.get("index", 0) == 0 and isinstance(delta.get("content"), str):
                self.text.append(delta["content"])

    def _take_usage(self, chunk: dict[str, Any]) -> bool:
        """Record usage; False when the chunk only existed to carry usage nobody asked for."""
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            usage.add(self._usage_before)
            self.ctx.usage = usage
            if self._continuing and isinstance(chunk.get("usage"), dict):
                chunk["usage"] = _usage_dict(usage)
        if self.keep_usage:
            return True
        chunk.pop("usage", None)
        return bool(chunk.get("choices")) or usage is None


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def _through(
    stream_filter: StreamFilter, chunks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out.extend(await stream_filter.on_chunk(chunk))
    return out
