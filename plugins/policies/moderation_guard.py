"""Built-in plugin `moderation_guard`: rejects prompts that an OpenAI-compatible moderation endpoint
flags, before anything reaches the upstream.

Route policy `moderation_guard`:

    backends:
      moderation: {provider: openai, api_key: "${OPENAI_API_KEY}"}   # any OpenAI-compatible one
    routes:
      - match: {model: "gpt-*"}
        backend: openai
        policies:
          moderation_guard:
            backend: moderation          # a backend of this file: its base_url and key are used
            model: omni-moderation-latest
            categories: [violence, self-harm]   # optional: act only on these categories
            roles: [user]                # optional: only these messages' text (default: all)
            on_error: deny               # deny = fail-closed (default), allow = fail-open
            timeout_seconds: 10          # default: the backend's timeout_seconds, else 10
            reject_status: 400
            reject_message: the request was flagged by content moderation
            error_status: 503

Every text the request carries (read through its API's policy view: message texts, system
text, tool results, text documents, embeddings input; not tool-call arguments) is one input.
The guard sends
`POST {base_url}/moderations` with `{"model": ..., "input": [texts]}` and the moderation
backend's credentials (`authorization: Bearer <its api_key>`, its `headers`; with
`auth: passthrough`, the client's key), never the client's key otherwise.

Verdict: without `categories`, any `results[].flagged: true` rejects; with `categories`, only a
listed category that is true in some result does. A rejection is answered in the client's API
error shape with `reject_status` (default 400, like OpenAI's own content-policy refusals) and
code `content_flagged`; its message names the flagged categories, and the upstream receives
nothing. A timeout, connection failure, non-2xx status, a body that is not JSON or that does
not have the moderation shape (checked with pydantic), or a backend that was skipped at start
(optional without a key) is handled by `on_error`: `allow` lets the request through, `deny`
answers `error_status` (`server_error`, code `guard_unavailable`).

Each decision is appended to `ctx.annotations["guards"]` (the access log's `extra.guards`):
`{"guard": "moderation_guard", "stage": "request", "action": "pass" | "reject",
"categories": {<flagged category>: <number of inputs>}}`, with `error` when the service failed.
Never prompt text.

At start and on every reload (`modelway_configure`), every route's `backend` must name a
backend of the file; the error names `routes[i].policies.moderation_guard.backend`. The HTTP
client is an aiohttp session each policy owns, created on the running loop at first use and
closed when its configuration is retired (`Policy.shutdown`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelway import Decision, GatewayError, Policy, PolicySpec, RequestContext, hookimpl
from modelway.plugins.policies.guard_http import ServiceFailed, post_json
from modelway.providerkit import request_key

if TYPE_CHECKING:
    from modelway.runtime import Backend, Gateway

NAME = "moderation_guard"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 10.0
logger = logging.getLogger("modelway")


class ModerationGuardConfig(BaseModel):
    """A route's `policies.moderation_guard` section."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(min_length=1)
    model: str = "omni-moderation-latest"
    categories: list[str] | None = Field(None, min_length=1)
    roles: list[str] | None = Field(None, min_length=1)
    on_error: Literal["allow", "deny"] = "deny"
    timeout_seconds: float | None = Field(None, gt=0)
    reject_status: int = Field(400, ge=400, le=599)
    reject_message: str = "the request was flagged by content moderation"
    error_status: int = Field(503, ge=400, le=599)


class ModerationResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    flagged: bool
    categories: dict[str, bool | None] = Field(default_factory=dict)


class ModerationAnswer(BaseModel):
    """The part of OpenAI's moderation answer the guard relies on."""

    model_config = ConfigDict(extra="ignore")
    results: list[ModerationResult] = Field(min_length=1)


class ModerationGuard(Policy):
    """One route's moderation guard; owns the aiohttp session it calls the endpoint with."""

    name = NAME

    def __init__(self, config: ModerationGuardConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def on_request(self, ctx: RequestContext) -> Decision | None:
        texts = prompt_texts(ctx, self.config.roles)
        if not texts:
            return None
        try:
            answer = await self._moderate(ctx, texts)
        except ServiceFailed as failure:
            self._failed(ctx, failure.kind)
            return None
        flagged, categories = self.verdict(answer)
        if not flagged:
            record(ctx, "pass", categories)
            return None
        record(ctx, "reject", categories, status=self.config.reject_status)
        return self._reject(categories)

    def verdict(self, answer: ModerationAnswer) -> tuple[bool, dict[str, int]]:
        """Whether to reject, and how many inputs each acted-on category was true for."""
        wanted = self.config.categories
        counts: Counter[str] = Counter()
        for result in answer.results:
            counts.update(
                name for name, hit in result.categories.items() if hit and _acted_on(name, wanted)
            )
        if wanted is None:
            return any(r.flagged for r in answer.results), dict(counts)
        return bool(counts), dict(counts)

    async def shutdown(self) -> None:
        """Close the session (the configuration holding this policy is retired)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    # ----------------------------------------------------------------------- the endpoint

    async def _moderate(self, ctx: RequestContext, texts: list[str]) -> ModerationAnswer:
        backend = ctx.gateway.backends.get(self.config.backend) if ctx.gateway else None
        if backend is None:
            raise ServiceFailed("backend_unavailable")
        body = {"model": self.config.model, "input": texts}
        timeout = aiohttp.ClientTimeout(total=self._timeout(backend))
        url = _base_url(backend) + "/moderations"
        data = await post_json(self._client(), url, body, _headers(ctx, backend), timeout)
        return _parse(data)

    def _timeout(self, backend: Backend) -> float:
        return self.config.timeout_seconds or backend.config.timeout_seconds or DEFAULT_TIMEOUT

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _failed(self, ctx: RequestContext, kind: str) -> None:
        deny = self.config.on_error == "deny"
        logger.warning(
            "moderation_guard on route %s, request %s: moderation failed (%s); %s",
            ctx.route.name if ctx.route else None,
            ctx.id,
            kind,
            "denying" if deny else "allowing",
        )
        record(ctx, "reject" if deny else "pass", {}, error=kind)
        if deny:
            raise GatewayError(
                self.config.error_status,
                f"content moderation is unavailable ({kind}); the request was not let through",
                "server_error",
                "guard_unavailable",
            )

    def _reject(self, categories: dict[str, int]) -> Decision:
        message = self.config.reject_message
        if categories:
            message += " (" + ", ".join(sorted(categories)) + ")"
        return Decision.reject(message, status=self.config.reject_status, code="content_flagged")


# --------------------------------------------------------------------------- helpers


def record(ctx: RequestContext, action: str, categories: dict[str, int], **details: Any) -> None:
    """Append this guard's decision to the access log's `extra.guards` (no prompt text)."""
    entry = {"guard": NAME, "stage": "request", "action": action, "categories": categories}
    ctx.annotations.setdefault("guards", []).append({**entry, **details})


def _acted_on(category: str, wanted: list[str] | None) -> bool:
    return wanted is None or category in wanted


def _parse(data: Any) -> ModerationAnswer:
    try:
        return ModerationAnswer.model_validate(data)
    except ValidationError:
        raise ServiceFailed("invalid_answer") from None


def _base_url(backend: Backend) -> str:
    base = backend.config.base_url or getattr(backend.provider, "base_url", None)
    return str(base or DEFAULT_BASE_URL).rstrip("/")


def _headers(ctx: RequestContext, backend: Backend) -> dict[str, str]:
    config = backend.config
    key = request_key(ctx, config)
    auth = {"authorization": f"Bearer {key}"} if key else {}
    return {**config.headers, **auth, "x-request-id": ctx.id}


def prompt_texts(ctx: RequestContext, roles: list[str] | None) -> list[str]:
    """The texts to moderate (every client API, through its view): each message text, system
    text, tool result, document or input of `roles`; tool-call arguments are not moderated."""
    if ctx.call is None:
        return []
    return [
        segment.text
        for segment in ctx.view.segments()
        if segment.kind != "tool_arguments"
        and segment.text
        and (not roles or segment.role in roles or (segment.kind == "input" and "user" in roles))
    ]


# --------------------------------------------------------------------------- hooks


@hookimpl
def modelway_policies() -> list[PolicySpec]:
    return [
        PolicySpec(
            NAME,
            ModerationGuard,
            ModerationGuardConfig,
            "rejects prompts an OpenAI-compatible moderation endpoint flags",
        )
    ]


@hookimpl
def modelway_configure(gateway: Gateway) -> None:
    """Every route's moderation backend must exist; a skipped one is a start-up notice."""
    problems = []
    for index, route in enumerate(gateway.config.routes):
        section = route.policies.get(NAME)
        if section is None:
            continue
        name = ModerationGuardConfig.model_validate(section).backend
        if name not in gateway.config.backends:
            known = ", ".join(gateway.config.backends) or "none defined"
            loc = ("routes", index, "policies", NAME, "backend")
            problems.append((loc, f"unknown backend '{name}' (backends: {known})"))
        elif name not in gateway.backends:
            gateway.notices.append(
                f"route {index}: moderation backend '{name}' is skipped; "
                "its moderation_guard answers per on_error"
            )
    if problems:
        raise gateway.source.error(problems)

