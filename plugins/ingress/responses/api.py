"""The Responses API as an `IngressAPI`: endpoints, lanes, answers, streams and errors.

`POST /v1/responses` goes to an OpenAI or Azure backend that has the Responses API as the
client's own body (the same-API lane, `native.py`), and to every other backend translated
through the hub (`request.py` there, `response.py` / `stream.py` back). The stored-response
endpoints are answered by the gateway (`endpoints.py`). Errors are OpenAI's error objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from modelway import jsonx
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import Endpoint, IngressAPI, LocalAnswer, WireSupport
from modelway.plugins.ingress.openai import error_object
from modelway.plugins.ingress.responses import endpoints
from modelway.plugins.ingress.responses.call import ResponsesCall, decode_create, responses_call
from modelway.plugins.ingress.responses.native import ResponsesWire
from modelway.plugins.ingress.responses.records import prepare_call, remember_made
from modelway.plugins.ingress.responses.request import to_chat_request
from modelway.plugins.ingress.responses.response import to_response
from modelway.plugins.ingress.responses.stream import ResponsesStreamEncoder
from modelway.runtime import Gateway
from modelway.wire import OPENAI_RESPONSES, Call

API = "openai.responses"
CREATE_PATH = "/v1/responses"
_CREATE = Endpoint(API, Operation.CHAT, "responses.create", wire=OPENAI_RESPONSES)
_STORED = {
    ("GET", ""): Endpoint(API, Operation.OTHER, "responses.retrieve", local=True),
    ("DELETE", ""): Endpoint(API, Operation.OTHER, "responses.delete", local=True),
    ("GET", "/input_items"): Endpoint(API, Operation.OTHER, "responses.input_items.list",
                                      local=True),
    ("POST", "/cancel"): Endpoint(API, Operation.OTHER, "responses.cancel", local=True),
}
_STORED_PATH = re.compile(r"/v1/responses/(?P<id>[^/]+)(?P<sub>/input_items|/cancel)?")
_WIRE = ResponsesWire()


class StartedEncoder:
    """The translated stream: `response.created` first, and the finished response kept."""

    def __init__(self, ctx: RequestContext, encoder: ResponsesStreamEncoder) -> None:
        self.ctx = ctx
        self.encoder = encoder
        self.content_type = encoder.content_type
        self._started = False

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.encoder.start()

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return self._start() + self.encoder.encode(chunk)

    def end(self) -> bytes:
        out = self._start() + self.encoder.end()
        if self.encoder.final is not None:
            remember_made(self.ctx, self.encoder.final)
        return out

    def error(self, error: GatewayError) -> bytes:
        return self._start() + self.encoder.error(error)


class ResponsesAPI(IngressAPI):
    name = API
    paths = (CREATE_PATH, "/v1/responses/{id}", "/v1/responses/{id}/input_items")

    def match(self, method: str, path: str) -> Endpoint | None:
        if path == CREATE_PATH:
            return _CREATE if method == "POST" else None
        found = _STORED_PATH.fullmatch(path)
        if found is None:
            return None
        return _STORED.get((method, found["sub"] or ""))

    def claims(self, path: str) -> bool:
        # Other `/v1/responses/...` paths (input_tokens, compact) pass through to OpenAI.
        found = _STORED_PATH.fullmatch(path)
        return path == CREATE_PATH or (found is not None and found["sub"] is not None)

    def wire(self, name: str) -> WireSupport:
        return _WIRE

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Call:
        return decode_create(body, headers)

    async def prepare(self, ctx: RequestContext) -> None:
        if isinstance(ctx.call, ResponsesCall):
            await prepare_call(ctx)

    def to_hub(self, call: Call) -> CanonicalRequest:
        assert isinstance(call, ResponsesCall)
        if call.pinned is not None:
            raise GatewayError(
                400,
                f"previous_response_id names a response that backend '{call.pinned[0]}' "
                "keeps itself; it can continue it only on the Responses API, and this "
                "request would be translated (a route that continues broken streams "
                "translates them)",
                param="previous_response_id",
                code="unsupported_parameter",
            )
        chat = to_chat_request(
            call.body, call.history, builtin_tools="reject", items_by_id=call.items_by_id
        )
        return CanonicalRequest(Operation.CHAT, call.model, chat, call.stream, True)

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        call = responses_call(ctx)
        out = to_response(
            response.body,
            request=call.body,
            response_id=call.response_id,
            created_at=call.created_at,
            history=call.history,
        )
        remember_made(ctx, out)
        return jsonx.dumps(out)

    def stream_encoder(self, ctx: RequestContext) -> StartedEncoder:
        call = responses_call(ctx)
        encoder = ResponsesStreamEncoder(
            call.body, call.response_id, call.created_at, call.history
        )
        return StartedEncoder(ctx, encoder)

    def error_body(self, error: GatewayError) -> bytes:
        return jsonx.dumps(error_object(error))

    async def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        return await endpoints.answer(endpoint.name, ctx, gateway)
