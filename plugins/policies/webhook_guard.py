"""Built-in plugin `webhook_guard`: an external HTTP service decides whether a prompt or an answer
may pass, be changed, or be rejected.

Route policy `webhook_guard`:

    policies:
      webhook_guard:
        url: https://guard.internal/check
        headers: {authorization: "Bearer ${GUARD_TOKEN}"}   # ${VAR} works as anywhere in the file
        timeout_seconds: 5      # the whole call: connect, send, answer
        on_error: deny          # deny = fail-closed (default), allow = fail-open
        stages: [request]       # request and/or response
        reject_status: 400      # when the service rejects without a status of its own
        error_status: 503       # the fail-closed answer when the service fails
        buffer_streams: false   # see "Streams" below

Protocol. The gateway POSTs JSON (`content-type: application/json`, `x-request-id`, plus the
configured headers) and expects a 2xx JSON answer:

    request stage   {"stage": "request", "request_id": "...", "route": "...", "model": "...",
                     "api": "openai.chat" | "anthropic.messages" | ...,
                     "messages": [<OpenAI chat messages>],
                     "segments": [{"role": ..., "kind": ..., "text": ...}, ...]}
    response stage  {"stage": "response" | "stream", "request_id": ..., "route": ..., "model": ...,
                     "choice": 0, "text": "<the answer's text for that choice>"}

    answer          {"action": "pass"}
                  | {"action": "modify", "texts": [...]}        (request stage, every API:
                                                                 one text per segment)
                  | {"action": "modify", "messages": [...]}     (request stage: replaces them)
                  | {"action": "modify", "text": "..."}         (response stages: replaces it)
                  | {"action": "reject", "message": "...", "status": 403, "code": "..."}
                    (message, status (400-599) and code are optional)

`messages` are the OpenAI chat body's own messages for OpenAI chat clients; for any other
client API (Anthropic, Gemini, Responses) they are one `{"role", "content"}` message per text
segment (the texts of the request as that API's policy view reads them; tool-call arguments
excluded), and a `messages` modification must then keep their number: its contents replace
the segments' texts in order. A reject reaches the client as an error in its own API's shape
(OpenAI:
`{"error": {"message", "type": "invalid_request_error", "code": "content_rejected"}}`) with
`status`, else `reject_status`. The default 400 is what OpenAI itself answers for a content-policy
refusal, so SDKs raise their usual bad-request error. On the request stage the upstream then
receives nothing. A response is checked once per choice that has text. Only chat requests are
sent to the service; other operations (embeddings) pass unchecked.

Failures: a timeout, a connection failure, a non-2xx status, a body that is not JSON or an answer
that does not match the protocol (checked with pydantic) are all handled by `on_error`: `allow`
lets the request or answer pass unchanged, `deny` answers `error_status` (default 503,
`type: server_error`, `code: guard_unavailable`).

Streams. The request stage applies to streamed requests like any other. The response stage
cannot check a stream without holding it, so by default it does not apply to streams (the
access log says `"unchecked": true`). With `buffer_streams: true` the stream filter holds every
chunk until the upstream stream ends, asks the service (stage `"stream"`), then releases the
chunks (the modified text goes into the first content chunk of its choice); the client then
sees the whole answer at the end, and a rejection or fail-closed error arrives as the stream's
error event (the HTTP status is already 200).

Each decision is appended to `ctx.annotations["guards"]` (the access log's `extra.guards`):
`{"guard": "webhook_guard", "stage", "action": "pass" | "modified" | "reject"}`, plus `status`
for rejections and `error` (`timeout`, `unreachable`, `http_<status>`, `not_json`,
`invalid_answer`) when the service failed. Never prompt or answer text.

The HTTP client is an aiohttp session each policy owns, created on the running event loop at the
first call and closed in `modelway_shutdown`; nothing blocks the proxy's event loop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

import aiohttp
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
)

from modelway import (
    Decision,
    GatewayError,
    Operation,
    Policy,
    PolicySpec,
    RequestContext,
    hookimpl,
)
from modelway.plugins.policies.guard_http import ServiceFailed, post_json
from modelway.wire import OPENAI_CHAT, ResponseView, Segment

if TYPE_CHECKING:
    pass

NAME = "webhook_guard"
Stage = Literal["request", "response"]
logger = logging.getLogger("modelway")


def _request_only() -> list[Stage]:
    return ["request"]


class WebhookGuardConfig(BaseModel):
    """A route's `policies.webhook_guard` section."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_seconds: float = Field(5.0, gt=0)
    on_error: Literal["allow", "deny"] = "deny"
    stages: list[Stage] = Field(default_factory=_request_only, min_length=1)
    reject_status: int = Field(400, ge=400, le=599)
    error_status: int = Field(503, ge=400, le=599)
    buffer_streams: bool = False


# --------------------------------------------------------------------------- the service's answer


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PassAnswer(_Answer):
    action: Literal["pass"]


class RejectAnswer(_Answer):
    action: Literal["reject"]
    message: str | None = None
    status: int | None = Field(None, ge=400, le=599)
    code: str | None = None


class Message(BaseModel):
    """One chat message the service sends back: a role, and anything OpenAI allows besides."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ModifyMessages(_Answer):
    action: Literal["modify"]
    messages: list[Message] = Field(min_length=1)


class ModifyTexts(_Answer):
    """Replaces the request's text segments, one text per segment, in order (every API)."""

    action: Literal["modify"]
    texts: list[str]


class ModifyText(_Answer):
    action: Literal["modify"]
    text: str


RequestAnswer = ModifyTexts | ModifyMessages | PassAnswer | RejectAnswer
ResponseAnswer = Annotated[PassAnswer | RejectAnswer | ModifyText, Field(discriminator="action")]
_REQUEST_ANSWER: TypeAdapter[RequestAnswer] = TypeAdapter(RequestAnswer)
_RESPONSE_ANSWER: TypeAdapter[ResponseAnswer] = TypeAdapter(ResponseAnswer)


# --------------------------------------------------------------------------- the policy


class WebhookGuard(Policy):
    """One route's webhook guard; owns the aiohttp session it calls the service with."""

    name = NAME

    def __init__(self, config: WebhookGuardConfig) -> None:
        self.config = config
        self._url = str(config.url)
        self._headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def on_request(self, ctx: RequestContext) -> Decision | None:
        if "request" not in self.config.stages or not _is_chat(ctx):
            return None
        segments = [s for s in ctx.view.segments() if s.kind != "tool_arguments"]
        payload = {
            **_envelope(ctx, "request"),
            "messages": _messages(ctx, segments),
            "segments": [{"role": s.role, "kind": s.kind, "text": s.text} for s in segments],
        }
        answer = await self._ask(ctx, "request", payload, _REQUEST_ANSWER)
        if isinstance(answer, RejectAnswer):
            return self._reject(ctx, "request", answer)
        if isinstance(answer, ModifyMessages | ModifyTexts):
            self._modify(ctx, answer, segments)
            record(ctx, "request", "modified")
        elif answer is not None:
            record(ctx, "request", "pass")
        return None

    def _modify(
        self, ctx: RequestContext, answer: ModifyMessages | ModifyTexts, segments: list[Segment]
    ) -> None:
        assert ctx.call is not None
        if isinstance(answer, ModifyMessages) and ctx.call.wire == OPENAI_CHAT:
            ctx.call.body["messages"] = [m.model_dump(exclude_unset=True) for m in answer.messages]
            ctx.call.mark_edited()
            return
        texts = answer.texts if isinstance(answer, ModifyTexts) else _texts_of(answer.messages)
        if texts is None or len(texts) != len(segments):
            self._failed(ctx, "request", "invalid_answer")
            return
        for segment, text in zip(segments, texts, strict=True):
            segment.set(text)

    async def on_response(self, ctx: RequestContext, response: ResponseView) -> Decision | None:
        if "response" not in self.config.stages or not _is_chat(ctx):
            return None
        for index, segment in enumerate(response.segments()):
            text = await self.check_answer(ctx, "response", index, segment.text)
            if text is not None:
                segment.set(text)
        return None

    def stream_filter(self, ctx: RequestContext) -> HeldText | None:
        if "response" not in self.config.stages or not _is_chat(ctx):
            return None
        if not self.config.buffer_streams:
            record(ctx, "stream", "pass", unchecked=True)
            return None
        return HeldText(self, ctx)

    async def check_answer(
        self, ctx: RequestContext, stage: str, index: int | str, text: str
    ) -> str | None:
        """The replacement text for one choice, None to keep it; raises when it is rejected."""
        payload = {**_envelope(ctx, stage), "choice": index, "text": text}
        answer = await self._ask(ctx, stage, payload, _RESPONSE_ANSWER)
        if isinstance(answer, RejectAnswer):
            raise self._reject(ctx, stage, answer).as_error()
        if isinstance(answer, ModifyText):
            record(ctx, stage, "modified")
            return answer.text
        if answer is not None:
            record(ctx, stage, "pass")
        return None

    async def shutdown(self) -> None:
        """Close the session (the configuration holding this policy is retired)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # ----------------------------------------------------------------------- calling the service

    async def _ask(
        self, ctx: RequestContext, stage: str, payload: dict[str, Any], adapter: TypeAdapter[Any]
    ) -> Any:
        """The validated answer, or None when the service failed and `on_error` allows."""
        try:
            data = await self._post(ctx, payload)
            return adapter.validate_python(data)
        except ValidationError:
            self._failed(ctx, stage, "invalid_answer")
        except ServiceFailed as failure:
            self._failed(ctx, stage, failure.kind)
        return None

    async def _post(self, ctx: RequestContext, payload: dict[str, Any]) -> Any:
        headers = {"x-request-id": ctx.id, **self._headers}
        return await post_json(self._client(), self._url, payload, headers)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _failed(self, ctx: RequestContext, stage: str, kind: str) -> None:
        deny = self.config.on_error == "deny"
        route = ctx.route.name if ctx.route else None
        logger.warning(
            "webhook_guard on route %s, request %s: the service failed (%s); %s",
            route,
            ctx.id,
            kind,
            "denying" if deny else "allowing",
        )
        record(ctx, stage, "reject" if deny else "pass", error=kind)
        if deny:
            what = "request" if stage == "request" else "answer"
            raise GatewayError(
                self.config.error_status,
                f"the webhook guard could not check the {what} ({kind}); it was not let through",
                "server_error",
                "guard_unavailable",
            )

    def _reject(self, ctx: RequestContext, stage: str, answer: RejectAnswer) -> Decision:
        status = answer.status or self.config.reject_status
        record(ctx, stage, "reject", status=status)
        default = "rejected by the webhook guard: " + (
            "the request is not allowed" if stage == "request" else "the answer is withheld"
        )
        return Decision.reject(
            answer.message or default, status=status, code=answer.code or "content_rejected"
        )


class HeldText:
    """`buffer_streams: true`: holds each channel's text until it ends, checks it, releases it."""

    def __init__(self, guard: WebhookGuard, ctx: RequestContext) -> None:
        self._guard = guard
        self._ctx = ctx
        self._held: dict[str, list[str]] = {}

    async def push(self, channel: str, text: str, final: bool) -> str:
        self._held.setdefault(channel, []).append(text)
        if not final:
            return ""
        whole = "".join(self._held.pop(channel))
        index: int | str = int(channel) if channel.isdigit() else channel
        replacement = await self._guard.check_answer(self._ctx, "stream", index, whole)
        return whole if replacement is None else replacement


# --------------------------------------------------------------------------- helpers


def record(ctx: RequestContext, stage: str, action: str, **details: Any) -> None:
    """Append this guard's decision to the access log's `extra.guards` (no prompt text)."""
    entry = {"guard": NAME, "stage": stage, "action": action, **details}
    ctx.annotations.setdefault("guards", []).append(entry)


def _is_chat(ctx: RequestContext) -> bool:
    return ctx.call is not None and ctx.call.operation is Operation.CHAT


def _envelope(ctx: RequestContext, stage: str) -> dict[str, Any]:
    return {
        "stage": stage,
        "request_id": ctx.id,
        "route": ctx.route.name if ctx.route else None,
        "model": ctx.model,
        "api": ctx.call.wire if ctx.call else None,
    }


def _messages(ctx: RequestContext, segments: list[Segment]) -> list[Any]:
    """OpenAI chat bodies' own messages; for other APIs, one message per text segment."""
    if ctx.call is not None and ctx.call.wire == OPENAI_CHAT:
        return list(ctx.call.body.get("messages") or [])
    return [{"role": s.role, "content": s.text} for s in segments]


def _texts_of(messages: list[Message]) -> list[str] | None:
    texts = [m.content for m in messages]
    strings = [t for t in texts if isinstance(t, str)]
    return strings if len(strings) == len(texts) else None


# --------------------------------------------------------------------------- hooks


@hookimpl
def modelway_policies() -> list[PolicySpec]:
    return [
        PolicySpec(
            NAME,
            WebhookGuard,
            WebhookGuardConfig,
            "asks an external HTTP service to pass, modify or reject prompts and answers",
        )
    ]

