"""Token counts for backends that cannot count: the gateway's own estimate.

A count request (Anthropic's `POST /v1/messages/count_tokens`, Gemini's `:countTokens`) goes
to a backend that counts: on the same-API lane (Anthropic, Vertex Claude, Gemini, Vertex
Gemini) or translated (a Gemini client's count to an Anthropic backend, an Anthropic
client's to a Gemini backend: providers that list `Operation.COUNT_TOKENS`). For any other
backend (OpenAI, OpenAI-compatible, Bedrock, mock) the gateway answers itself with an offline
estimate from `modelway.tokens` (o200k_base), in the client's API shape, and marks it with
the answer header `x-modelway-token-count: estimate`. Nothing goes upstream then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from modelway import tokens
from modelway.attempts import attempt_model
from modelway.canonical import CanonicalResponse, Operation
from modelway.context import RequestContext
from modelway.errors import bad_request
from modelway.extension import Provider
from modelway.replies import Reply, reply
from modelway.wire import ANTHROPIC_COUNT_TOKENS, GEMINI_COUNT_TOKENS, Call

COUNT_HEADER = "x-modelway-token-count"
ESTIMATE = "estimate"


def counts_itself(provider: Provider, call: Call, model: str) -> bool:
    """Whether the backend answers `call`'s count itself (natively or translated)."""
    if call.wire in provider.native_wires(model):
        return True
    return Operation.COUNT_TOKENS in provider.operations


def estimate(call: Call) -> int:
    """Prompt tokens of a count request's body, offline."""
    if call.wire == ANTHROPIC_COUNT_TOKENS:
        return tokens.estimate_messages(call.body)
    if call.wire == GEMINI_COUNT_TOKENS:
        counted = gemini_counted(call.body)
        if not counted.get("contents"):  # as Gemini itself (and the hub translation) answers
            raise bad_request("contents must hold at least one content", param="contents")
        return tokens.estimate_gemini(counted)
    return tokens.count_text(call.raw.decode("utf-8", "replace"), call.model)


def gemini_counted(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a countTokens body counts: its `generateContentRequest`, else itself."""
    inner = body.get("generateContentRequest") or body.get("generate_content_request")
    return inner if isinstance(inner, dict) else body


async def estimate_reply(ctx: RequestContext) -> Reply | None:
    """The gateway's estimate for a count request whose first backend cannot count; None
    for every other request (it goes upstream)."""
    call, plan = ctx.call, ctx.plan
    if call is None or call.operation is not Operation.COUNT_TOKENS or ctx.api is None:
        return None
    if plan is None or not plan.attempts:
        return None
    attempt = plan.attempts[0]
    if counts_itself(attempt.backend.provider, call, attempt_model(ctx, attempt)):
        # Failover only to backends that count too: a count is never half real, half guessed.
        plan.attempts = [
            a
            for a in plan.attempts
            if counts_itself(a.backend.provider, call, attempt_model(ctx, a))
        ]
        return None
    # The first use of the tokenizer loads its vocabulary: off the event loop.
    count = await asyncio.to_thread(estimate, call)  # a bad body raises its 400 here
    body = ctx.api.encode_response(ctx, CanonicalResponse({"input_tokens": count}))
    answer = reply(ctx, 200, body, "application/json")
    answer.headers[COUNT_HEADER] = ESTIMATE
    return answer
