"""A translated stream: provider bytes in, the client's stream bytes out, chunk by chunk.

Decodes the provider's stream into canonical chunks, records usage, drops the usage chunk the
gateway asked for on the client's behalf, runs the route's text filters over the chunks'
content, and encodes for the client's API. A continuation on another backend feeds the same
object (`resume`), so the client reads one answer: one role chunk, usage summed.
"""

from __future__ import annotations

from typing import Any

from modelway.canonical import Usage
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.extension import StreamDecoder
from modelway.hubview import ChunkTextEditor
from modelway.ingress import StreamEncoder
from modelway.wire import TextFilter


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


class HubStream:
    """The per-request transformer of a translated stream (a `StreamSource`)."""

    continuable = True

    def __init__(
        self,
        ctx: RequestContext,
        decoder: StreamDecoder,
        filters: list[TextFilter],
        encoder: StreamEncoder,
        *,
        keep_usage: bool,
    ) -> None:
        self.ctx = ctx
        self.decoder = decoder
        self.editor = ChunkTextEditor(filters) if filters else None
        self.encoder = encoder
        self.keep_usage = keep_usage
        self.error: GatewayError | None = None
        """Set when the upstream stream failed; the bytes returned so far are still valid."""
        self.text: list[str] = []
        """The answer's text so far (choice 0, before filters), for a continuation."""
        self.has_tool_calls = False
        self.usage: Usage | None = None
        self._usage_before = Usage()
        self._continuing = False

    @property
    def can_continue(self) -> bool:
        """Whether another backend could pick the answer up where it broke off."""
        request = self.ctx.request
        single = request is None or request.body.get("n") in (None, 1)
        return single and not self.has_tool_calls and bool(self.text)

    def resume(self, decoder: StreamDecoder, usage_before: Usage | None = None) -> None:
        """Carry on in the same client stream with another backend's stream."""
        self.decoder = decoder
        self.error = None
        self._usage_before = usage_before or self.usage or self._usage_before
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
        tail = await self.editor.end() if self.editor else []
        return out + b"".join(self.encoder.encode(c) for c in tail) + self.encoder.end()

    def error_event(self, error: GatewayError) -> bytes:
        return self.encoder.error(error)

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
        if self.editor is not None:
            ready = await self.editor.edit_all(ready)
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
            self.usage = usage
            if self._continuing and isinstance(chunk.get("usage"), dict):
                chunk["usage"] = usage.to_openai()
        if self.keep_usage:
            return True
        chunk.pop("usage", None)
        return bool(chunk.get("choices")) or usage is None
