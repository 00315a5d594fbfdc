"""Built-in plugin `enrich`: a policy that adds messages and sets request fields on a route.

Enable it per route under `policies: {enrich: {...}}`:

```yaml
routes:
  - name: support
    match: {model: support-*}
    backend: openai
    policies:
      enrich:
        prepend:
          - role: system
            content: "You are the {route} assistant of team {header:x-team}. Today is {date}."
        append:
          - {role: user, content: "Answer in English."}
        defaults: {temperature: 0.3}     # set only when the client did not send the field
        overrides: {max_tokens: 512}     # always set, replacing what the client sent
        remove: [logit_bias]             # dropped when the client sent it
        timezone: UTC                    # for {date} and {datetime}; any IANA name
```

What it does, on chat requests (and token counts) only, in this order: `remove`, `defaults`,
`overrides`, then the messages. It edits the client's own request through the policy view of
its wire API (`modelway.wire`), in `on_request`, before planning: an Anthropic client's
request is edited as an Anthropic body, a Gemini client's as a Gemini body, and so on, on the
same-API lane and on the translated one alike. Field names are portable names, mapped to each
API's own field: `temperature`, `top_p`, `top_k`, `max_tokens` (Anthropic `max_tokens`,
Gemini `generationConfig.maxOutputTokens`, Responses `max_output_tokens`), `stop` (Anthropic
`stop_sequences`), `seed`, `user` (Anthropic `metadata.user_id`); any other name is a
top-level field of the client's API body, set or removed as named (so `logit_bias` applies to
OpenAI chat bodies). A portable setting an API has no field for (`seed` on Anthropic) is left
out. `model`, `messages` and `stream` cannot be set or removed (the route chose the model;
`prepend`/`append` edit the messages; streaming is the client's choice). A field the client
sent as `null` counts as not sent for `defaults`. Values are literal JSON values (no
templates). To cap the answer's length whatever the client sent, override `max_tokens` and
remove `max_completion_tokens` (OpenAI backends prefer the latter).

Messages. `prepend` messages go before all of the client's messages, in the configured order;
`append` messages after them. A prepended system message therefore comes first, before the
client's own system message, which is kept: an OpenAI chat body gets both system messages
(ours first); an Anthropic body gets both in its `system` field, as two text blocks in that
order (a lone system text stays a plain string); a Gemini body gets a first part in
`systemInstruction`; a Responses body a first `system` message item. Appended user text after
the client's last user message is a separate user message in OpenAI chat bodies and is merged
into the same user turn (another text block or part) in Anthropic and Gemini bodies. A message
whose rendered content is empty or blank (e.g. a missing header) is left out.

Templates. `content` is literal text with placeholders: `{route}` (the route's name),
`{model}` (the model the client asked for), `{header:<name>}` (a request header, case does
not matter; empty when absent), `{date}` (`2025-01-31`), `{datetime}` (`2025-01-31T09:15:00Z`,
seconds, ISO 8601, `Z` in UTC, an offset elsewhere) and `{client}` (the client's loggable
identity: `user:<x-user-id>`, `key:<hash>` or `ip:<address>`). `{{` and `}}` are literal
braces. Templates are parsed when the configuration loads: an unknown placeholder or a stray
brace is a configuration error naming its YAML path. Rendering is one pass over the parsed
pieces, with no code, no attribute access and no re-expansion: a header whose value contains
`{model}` is inserted as those characters. Values that come from the request (header, model,
client) are client-controlled: control characters (newlines included) become spaces and each
value is cut to 256 characters, but the text is otherwise inserted as sent, so treat it as
untrusted in a prompt.

Embeddings requests are left alone: prompt messages do not apply to them and chat fields such
as `max_tokens` would break them; the access log says `{"skipped": "embeddings"}`.

The access log gets, under `extra.enrich`, what was applied without any content: the number
of messages prepended and appended, how many rendered empty and were left out, and the names
of the fields defaulted (only those the client had not sent), overridden and removed (only
those the client had sent).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from modelway import Decision, Operation, Policy, PolicySpec, RequestContext, RequestView, hookimpl

MAX_VALUE_CHARS = 256
"""Request-derived values (header, model, client) are cut to this many characters."""

RESERVED_FIELDS: dict[str, str] = {
    "model": "the route decides the model",
    "messages": "use prepend and append",
    "stream": "streaming is the client's choice",
}

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KNOWN = "{route}, {model}, {header:<name>}, {date}, {datetime}, {client}"


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True, slots=True)
class RequestData:
    """What templates can show of one request, read once per request."""

    route: str
    model: str
    client: str
    headers: Mapping[str, str]
    now: datetime


def clean(value: str) -> str:
    """A client-controlled value made safe to splice into text: no control characters."""
    return _CONTROL.sub(" ", value[:MAX_VALUE_CHARS])


def _iso_datetime(now: datetime) -> str:
    text = now.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_VALUES: dict[str, Callable[[RequestData], str]] = {
    "route": lambda data: data.route,
    "model": lambda data: clean(data.model),
    "client": lambda data: clean(data.client),
    "date": lambda data: data.now.date().isoformat(),
    "datetime": lambda data: _iso_datetime(data.now),
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One placeholder: a name from `_VALUES`, or `header` with the header's name."""

    name: str
    header: str = ""

    def render(self, data: RequestData) -> str:
        if self.name == "header":
            return clean(data.headers.get(self.header, ""))
        return _VALUES[self.name](data)


Template = tuple[str | Slot, ...]


def parse_slot(name: str) -> Slot:
    """The placeholder `{name}`; ValueError naming it when it is not a known one."""
    if name in _VALUES:
        return Slot(name)
    kind, colon, header = name.partition(":")
    if kind == "header" and colon:
        if not _HEADER_NAME.fullmatch(header):
            raise ValueError("{header:<name>} needs a header name made of token characters")
        return Slot("header", header.lower())
    shown = name if len(name) <= 40 else name[:40] + "..."
    raise ValueError(f"unknown placeholder '{{{shown}}}' (known: {_KNOWN})")


def parse_template(text: str) -> Template:
    """`text` as literal pieces and placeholders; ValueError for what cannot be rendered."""
    parts: list[str | Slot] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is None:
            raise ValueError(f"unmatched '{token}' (write '{token * 2}' for a literal brace)")
        else:
            _flush(parts, literal)
            parts.append(parse_slot(match.group(1)))
    literal.append(text[position:])
    _flush(parts, literal)
    return tuple(parts)


def _flush(parts: list[str | Slot], literal: list[str]) -> None:
    text = "".join(literal)
    literal.clear()
    if text:
        parts.append(text)


def render(template: Template, data: RequestData) -> str:
    return "".join(part if isinstance(part, str) else part.render(data) for part in template)


# --------------------------------------------------------------------------- configuration


def _template_text(text: str) -> str:
    parse_template(text)
    return text


def _field_name(name: str) -> str:
    if not name:
        raise ValueError("a field name cannot be empty")
    if name in RESERVED_FIELDS:
        raise ValueError(f"'{name}' cannot be set or removed here: {RESERVED_FIELDS[name]}")
    return name


FieldName = Annotated[str, AfterValidator(_field_name)]


def zone(name: str) -> tzinfo:
    """The time zone `name` (IANA), UTC without a lookup; ValueError if unknown."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone (use an IANA name such as Europe/Paris)") from None


def _zone_name(name: str) -> str:
    zone(name)
    return name


_EXCLUSIVE = (("defaults", "overrides"), ("defaults", "remove"), ("overrides", "remove"))


class MessageTemplate(BaseModel):
    """One message to insert: its role and its content template."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(min_length=1), AfterValidator(_template_text)]


class EnrichConfig(BaseModel):
    """`routes[i].policies.enrich`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prepend: list[MessageTemplate] = Field(default_factory=list)
    append: list[MessageTemplate] = Field(default_factory=list)
    defaults: dict[FieldName, JsonValue] = Field(default_factory=dict)
    overrides: dict[FieldName, JsonValue] = Field(default_factory=dict)
    remove: list[FieldName] = Field(default_factory=list)
    timezone: Annotated[str, AfterValidator(_zone_name)] = "UTC"

    @model_validator(mode="after")
    def _no_field_twice(self) -> EnrichConfig:
        for first, second in _EXCLUSIVE:
            both = sorted(set(getattr(self, first)) & set(getattr(self, second)))
            if both:
                names = ", ".join(f"'{name}'" for name in both)
                raise ValueError(f"{names} in both {first} and {second}: keep one")
        return self


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    role: str
    content: Template


def compile_messages(messages: list[MessageTemplate]) -> tuple[CompiledMessage, ...]:
    return tuple(CompiledMessage(m.role, parse_template(m.content)) for m in messages)


def render_messages(
    messages: tuple[CompiledMessage, ...], data: RequestData
) -> tuple[list[dict[str, Any]], int]:
    """The rendered messages, and how many rendered blank and were left out."""
    out = []
    for message in messages:
        text = render(message.content, data)
        if text.strip():
            out.append({"role": message.role, "content": text})
    return out, len(messages) - len(out)


def remove_fields(view: RequestView, names: tuple[str, ...]) -> list[str]:
    """Drop `names`; the names that were there."""
    return [name for name in names if view.remove(name)]


def set_defaults(view: RequestView, defaults: Mapping[str, Any]) -> list[str]:
    """Set each default the client did not send (absent or null); the names set."""
    applied = [name for name in defaults if view.get(name) is None]
    for name in applied:
        view.set(name, copy.deepcopy(defaults[name]))
    return applied


def set_overrides(view: RequestView, overrides: Mapping[str, Any]) -> list[str]:
    """Set every override, replacing what the client sent; the names set."""
    for name, value in overrides.items():
        view.set(name, copy.deepcopy(value))
    return list(overrides)


def request_data(ctx: RequestContext, timezone: tzinfo) -> RequestData:
    route = ctx.route.name if ctx.route is not None else ""
    now = datetime.now(timezone)
    return RequestData(route, ctx.model or "", ctx.client.identity, ctx.headers, now)


class EnrichPolicy(Policy):
    """Adds the configured messages and sets, overrides and removes request fields."""

    name = "enrich"

    def __init__(self, config: EnrichConfig) -> None:
        self.prepend = compile_messages(config.prepend)
        self.append = compile_messages(config.append)
        self.defaults = dict(config.defaults)
        self.overrides = dict(config.overrides)
        self.remove = tuple(config.remove)
        self.timezone = zone(config.timezone)

    async def on_request(self, ctx: RequestContext) -> Decision | None:
        call = ctx.call
        if call is None:
            return None
        if call.operation not in (Operation.CHAT, Operation.COUNT_TOKENS):
            ctx.annotations["enrich"] = {"skipped": call.operation.value}
            return None
        ctx.annotations["enrich"] = self.apply(ctx.view, request_data(ctx, self.timezone))
        return None

    def apply(self, view: RequestView, data: RequestData) -> dict[str, Any]:
        """Edit the request through its view; what was applied, as counts and names only."""
        removed = remove_fields(view, self.remove)
        defaulted = set_defaults(view, self.defaults)
        overridden = set_overrides(view, self.overrides)
        before, blank_before = render_messages(self.prepend, data)
        after, blank_after = render_messages(self.append, data)
        for message in before:
            view.prepend(message["role"], message["content"])
        for message in after:
            view.append(message["role"], message["content"])
        return {
            "prepended": len(before),
            "appended": len(after),
            "skipped_empty": blank_before + blank_after,
            "defaults": defaulted,
            "overrides": overridden,
            "removed": removed,
        }


@hookimpl
def modelway_policies() -> list[PolicySpec]:
    return [
        PolicySpec(
            "enrich",
            EnrichPolicy,
            EnrichConfig,
            "prepend/append messages (templates) and set default, overriding or removed fields",
        )
    ]
