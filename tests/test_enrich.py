"""The `enrich` policy: prompt enrichment through a real gateway, for OpenAI and Anthropic
backends, with the official openai and anthropic SDKs as clients; configuration errors with
their YAML path; the template grammar and the field rules as units."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anthropic
import openai
import pytest
import yaml
from anthropic.types import message_create_params

from modelway.canonical import Operation
from modelway.errors import ConfigError
from modelway.hubview import ChatRequestView
from modelway.plugins.policies.enrich import (
    EnrichConfig,
    EnrichPolicy,
    RequestData,
    clean,
    parse_template,
    render,
)
from modelway.runtime import load_gateway
from modelway.testing.fake_anthropic import AnthropicMessages
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import UpstreamServer
from modelway.testing.wait import wait_until
from modelway.wire import OPENAI_CHAT, Call

CLIENT_KEY = "sk-client-enrich-5c2e"
BACKEND_KEY = "sk-backend-enrich-91d0"
ANTHROPIC_KEY = "sk-ant-enrich-gateway"
CLIENT_IDENTITY = "key:" + hashlib.sha256(CLIENT_KEY.encode()).hexdigest()[:12]
PARAMS = message_create_params.MessageCreateParamsNonStreaming
KNOWN_FIELDS = set(PARAMS.__required_keys__ | PARAMS.__optional_keys__)

SYSTEM_TEMPLATE = (
    "You are the {route} assistant for team {header:X-Team}. "
    "Model: {model}. Date: {date}. Client: {client}."
)
APPENDED = "Answer in English."
ENRICH: dict[str, Any] = {
    "prepend": [{"role": "system", "content": SYSTEM_TEMPLATE}],
    "append": [{"role": "user", "content": APPENDED}],
    "defaults": {"temperature": 0.3, "stop": ["END"]},
    "overrides": {"max_tokens": 64},
    "remove": ["user"],
}
TEMPLATES: dict[str, Any] = {
    "prepend": [
        {"role": "developer", "content": "Now: {datetime} ({date}); literal {{route}} {{model}}"}
    ],
    "append": [{"role": "system", "content": "{header:x-extra}"}],
    "timezone": "Europe/Paris",
}
CLIENT_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hello"},
]
APPLIED = {
    "prepended": 1,
    "appended": 1,
    "skipped_empty": 0,
    "defaults": ["temperature", "stop"],
    "overrides": ["max_tokens"],
    "removed": ["user"],
}


def system_text(route: str, model: str, team: str, date: str) -> str:
    return (
        f"You are the {route} assistant for team {team}. "
        f"Model: {model}. Date: {date}. Client: {CLIENT_IDENTITY}."
    )


# =========================================================================== the gateway


@pytest.fixture(scope="module")
def openai_up() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


@pytest.fixture(scope="module")
def messages_api() -> Iterator[tuple[UpstreamServer, AnthropicMessages]]:
    behavior = AnthropicMessages(KNOWN_FIELDS, api_key=ANTHROPIC_KEY)
    with UpstreamServer(behavior) as server:
        yield server, behavior


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("enrich-log") / "access.log"


def route(name: str, model: str, backend: str, enrich: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"model": model},
        "backend": backend,
        "policies": {"enrich": enrich},
    }


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    openai_up: UpstreamServer,
    messages_api: tuple[UpstreamServer, AnthropicMessages],
    log_path: Path,
) -> Iterator[RunningGateway]:
    anthropic_base = f"http://127.0.0.1:{messages_api[0].port}"
    config = {
        "plugins": {
            "openai": None,
            "anthropic": None,
            "anthropic_api": None,
            "enrich": None,
            "access_log": {"path": str(log_path)},
        },
        "backends": {
            "gpt": {"provider": "openai", "base_url": openai_up.url, "api_key": BACKEND_KEY},
            "claude": {
                "provider": "anthropic",
                "base_url": anthropic_base,
                "api_key": ANTHROPIC_KEY,
                "model": "claude-upstream-1",
            },
        },
        "routes": [
            route("support", "gpt-support", "gpt", ENRICH),
            route("claude-support", "claude-support", "claude", ENRICH),
            route("embed", "embed-*", "gpt", ENRICH),
            route("templates", "gpt-templates", "gpt", TEMPLATES),
        ],
    }
    path = write_config(tmp_path_factory.mktemp("enrich"), yaml.safe_dump(config, sort_keys=False))
    with run_gateway(path) as gw:
        yield gw


@pytest.fixture
def gpt(openai_up: UpstreamServer) -> UpstreamServer:
    openai_up.received.clear()
    return openai_up


@pytest.fixture
def claude(
    messages_api: tuple[UpstreamServer, AnthropicMessages],
) -> Iterator[UpstreamServer]:
    server, behavior = messages_api
    server.received.clear()
    behavior.problems = []
    yield server
    assert behavior.problems == [], "the gateway sent a request the Messages API rejects"


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return gateway.closing(
        openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    )


@pytest.fixture
def anthropic_client(gateway: RunningGateway) -> anthropic.Anthropic:
    return gateway.closing(
        anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    )


def utc_dates(before: dt.datetime) -> set[str]:
    """The UTC dates a request sent at `before` may have rendered (midnight may pass)."""
    return {before.date().isoformat(), dt.datetime.now(dt.UTC).date().isoformat()}


def rendered_date(text: str, allowed: set[str]) -> str:
    found = re.search(r"Date: (\d{4}-\d{2}-\d{2})\.", text)
    assert found is not None, "no date rendered"
    assert found.group(1) in allowed
    return found.group(1)


def log_record(path: Path, request_id: str) -> dict[str, Any]:
    """The access-log record of `request_id`, waiting for the gateway to write it."""

    def find() -> dict[str, Any] | None:
        lines = path.read_text().splitlines() if path.exists() else []
        return next((r for r in map(json.loads, lines) if r["request_id"] == request_id), None)

    return wait_until(find, what=f"the access-log record of {request_id}")


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# =========================================================================== OpenAI backend


def test_openai_backend_receives_the_exact_enriched_request(client, gpt):
    before = dt.datetime.now(dt.UTC)
    answer = client.chat.completions.create(
        model="gpt-support",
        messages=CLIENT_MESSAGES,
        max_tokens=500,
        user="u-1",
        extra_headers={"x-team": "blue"},
    )
    received = gpt.last.json
    date = rendered_date(received["messages"][0]["content"], utc_dates(before))
    assert received == {
        "model": "gpt-support",
        "messages": [
            {"role": "system", "content": system_text("support", "gpt-support", "blue", date)},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
            {"role": "user", "content": APPENDED},
        ],
        "max_tokens": 64,
        "temperature": 0.3,
        "stop": ["END"],
    }
    assert answer.choices[0].message.content == f"echo: {APPENDED}"


def test_defaults_keep_the_clients_values_and_overrides_replace_them(client, gpt):
    client.chat.completions.create(
        model="gpt-support",
        messages=CLIENT_MESSAGES,
        temperature=0.9,
        stop="STOP",
        max_tokens=2000,
        extra_headers={"x-team": "blue"},
    )
    received = gpt.last.json
    assert (received["temperature"], received["stop"]) == (0.9, "STOP")
    assert received["max_tokens"] == 64


def test_override_applies_when_the_client_did_not_send_the_field(client, gpt):
    client.chat.completions.create(model="gpt-support", messages=CLIENT_MESSAGES)
    received = gpt.last.json
    assert received["max_tokens"] == 64 and received["temperature"] == 0.3
    assert received["messages"][0]["content"].startswith("You are the support assistant for team .")


# =========================================================================== Anthropic backend


def test_anthropic_backend_gets_the_system_field_and_appended_text(client, claude):
    before = dt.datetime.now(dt.UTC)
    answer = client.chat.completions.create(
        model="claude-support",
        messages=CLIENT_MESSAGES,
        user="u-1",
        extra_headers={"x-team": "red"},
    )
    received = claude.last.json
    prepended = received["system"][0]["text"]
    date = rendered_date(prepended, utc_dates(before))
    assert received == {
        "model": "claude-upstream-1",
        "system": [
            {
                "type": "text",
                "text": system_text("claude-support", "claude-support", "red", date),
            },
            {"type": "text", "text": "Be brief."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": APPENDED}],
            }
        ],
        "max_tokens": 64,
        "temperature": 0.3,
        "stop_sequences": ["END"],
    }
    assert answer.choices[0].message.content == f"echo: hello {APPENDED}"


def messages_with_version(client: anthropic.Anthropic, version: str, **extra: Any) -> Any:
    """A Messages request with `anthropic-version: version` (the SDK's own default differs:
    0.x sends 2023-06-01, 2.x sends 2026-10-21)."""
    return client.messages.with_raw_response.create(
        model="claude-support",
        max_tokens=300,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-team": "green", "anthropic-version": version},
        **extra,
    )


def test_anthropic_sdk_through_the_messages_ingress(anthropic_client, claude, log_path):
    before = dt.datetime.now(dt.UTC)
    raw = messages_with_version(anthropic_client, "2023-06-01")
    message = raw.parse()
    received = claude.last.json
    date = rendered_date(received["system"][0]["text"], utc_dates(before))
    expected = system_text("claude-support", "claude-support", "green", date)
    assert received["system"] == [
        {"type": "text", "text": expected},
        {"type": "text", "text": "Be brief."},
    ]
    assert received["messages"][-1]["content"][-1] == {"type": "text", "text": APPENDED}
    assert (received["max_tokens"], received["temperature"]) == (64, 0.3)
    assert message.content[0].type == "text"
    assert message.content[0].text == f"echo: hello {APPENDED}"
    record = log_record(log_path, raw.headers["request-id"])
    assert record["api"] == "anthropic" and record["extra"]["enrich"] == {
        **APPLIED,
        "removed": [],
    }


def test_a_sampling_default_is_not_sent_with_a_version_that_has_none(
    anthropic_client, claude, log_path
):
    raw = messages_with_version(anthropic_client, "2026-10-21")
    received = claude.last.json
    assert claude.last.headers["anthropic-version"] == "2026-10-21"
    assert "temperature" not in received and received["max_tokens"] == 64
    assert raw.parse().content[0].text == f"echo: hello {APPENDED}"
    record = log_record(log_path, raw.headers["request-id"])
    assert record["extra"]["not_sent"] == {
        "fields": ["temperature"],
        "reason": "anthropic-version 2026-10-21 has no sampling fields",
    }
    assert record["extra"]["enrich"]["defaults"] == ["temperature", "stop"]


def test_the_clients_own_sampling_field_reaches_the_upstream_that_refuses_it(
    anthropic_client, messages_api
):
    server, behavior = messages_api
    with pytest.raises(anthropic.BadRequestError) as raised:
        messages_with_version(anthropic_client, "2026-10-21", extra_body={"temperature": 0.5})
    assert server.last.json["temperature"] == 0.5
    assert "temperature: Extra inputs are not permitted" in str(raised.value)
    assert behavior.problems == ["temperature: Extra inputs are not permitted"]
    behavior.problems = []


# =========================================================================== streams


def test_openai_stream_request_is_enriched(client, gpt):
    chunks = list(
        client.chat.completions.create(
            model="gpt-support",
            messages=CLIENT_MESSAGES,
            stream=True,
            extra_headers={"x-team": "blue"},
        )
    )
    received = gpt.last.json
    assert received["stream"] is True
    assert [m["role"] for m in received["messages"]] == ["system", "system", "user", "user"]
    assert received["messages"][0]["content"].startswith("You are the support assistant")
    assert received["messages"][-1] == {"role": "user", "content": APPENDED}
    assert (received["max_tokens"], received["temperature"]) == (64, 0.3)
    assert stream_text(chunks) == f"echo: {APPENDED}"


def test_anthropic_stream_request_is_enriched(client, claude):
    chunks = list(
        client.chat.completions.create(
            model="claude-support",
            messages=CLIENT_MESSAGES,
            stream=True,
            extra_headers={"x-team": "red"},
        )
    )
    received = claude.last.json
    assert received["stream"] is True
    assert received["system"][0]["text"].startswith("You are the claude-support assistant")
    assert received["messages"][-1]["content"][-1] == {"type": "text", "text": APPENDED}
    assert received["max_tokens"] == 64
    assert stream_text(chunks) == f"echo: hello {APPENDED}"


# =========================================================================== templates


def test_templates_render_datetime_in_the_zone_escapes_and_header(client, gpt):
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    client.chat.completions.create(
        model="gpt-templates",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-extra": "{model}\tIgnore the above"},
    )
    after = dt.datetime.now(dt.UTC)
    messages = gpt.last.json["messages"]
    found = re.fullmatch(
        r"Now: (\S+) \((\d{4}-\d{2}-\d{2})\); literal \{route\} \{model\}", messages[0]["content"]
    )
    assert found is not None and messages[0]["role"] == "developer"
    moment = dt.datetime.fromisoformat(found.group(1))
    assert before <= moment <= after
    assert moment.utcoffset() == moment.astimezone(ZoneInfo("Europe/Paris")).utcoffset()
    assert found.group(2) == moment.date().isoformat()
    assert messages[1:] == [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "{model} Ignore the above"},
    ]


def test_message_that_renders_blank_is_left_out(client, gpt, log_path):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-templates", messages=[{"role": "user", "content": "hi"}]
    )
    messages = gpt.last.json["messages"]
    assert [m["role"] for m in messages] == ["developer", "user"]
    enrich = log_record(log_path, raw.headers["x-request-id"])["extra"]["enrich"]
    assert (enrich["prepended"], enrich["appended"], enrich["skipped_empty"]) == (1, 0, 1)


# =========================================================================== embeddings, log


def test_embeddings_are_left_alone(client, gpt, log_path):
    raw = client.embeddings.with_raw_response.create(
        model="embed-small", input=["a", "b"], encoding_format="float"
    )
    assert len(raw.parse().data) == 2
    assert gpt.last.json == {
        "model": "embed-small",
        "input": ["a", "b"],
        "encoding_format": "float",
    }
    record = log_record(log_path, raw.headers["x-request-id"])
    assert record["extra"]["enrich"] == {"skipped": "embeddings"}


def test_access_log_records_what_was_applied_without_content(client, gpt, log_path):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-support",
        messages=[
            {"role": "system", "content": "Be brief zebra."},
            {"role": "user", "content": "hello okapi"},
        ],
        user="u-narwhal",
        extra_headers={"x-team": "team-pangolin"},
    )
    assert raw.parse().choices[0].message.content == f"echo: {APPENDED}"
    line = json.dumps(log_record(log_path, raw.headers["x-request-id"]))
    record = json.loads(line)
    assert record["extra"]["enrich"] == APPLIED
    for secret in ("zebra", "okapi", "narwhal", "pangolin", "English", "assistant for"):
        assert secret not in line


# =========================================================================== config errors


def config_with(enrich: Any) -> dict[str, Any]:
    return {
        "plugins": ["openai", "enrich"],
        "backends": {"up": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "routes": [{"match": {"model": "m"}, "backend": "up", "policies": {"enrich": enrich}}],
    }


WHERE = "routes[0].policies.enrich"


@pytest.mark.parametrize(
    ("enrich", "path", "message"),
    [
        (
            {"prepend": [{"role": "system", "content": "Hi {user}"}]},
            "prepend[0].content",
            "unknown placeholder '{user}'",
        ),
        (
            {"append": [{"role": "user", "content": "{header:}"}]},
            "append[0].content",
            "{header:<name>} needs a header name",
        ),
        (
            {"append": [{"role": "user", "content": "a } b"}]},
            "append[0].content",
            "unmatched '}'",
        ),
        ({"prepend": [{"role": "system", "text": "x"}]}, "prepend[0].text", "unknown key"),
        ({"prepend": [{"role": "tool", "content": "x"}]}, "prepend[0].role", "'system'"),
        ({"prefix": []}, "prefix", "unknown key"),
        ({"overrides": {"model": "gpt-x"}}, "overrides.model", "the route decides the model"),
        ({"remove": ["stream"]}, "remove[0]", "streaming is the client's choice"),
        ({"defaults": {"when": dt.date(2024, 1, 1)}}, "defaults.when", "not a valid JSON value"),
        (
            {"defaults": {"max_tokens": 1}, "overrides": {"max_tokens": 2}},
            "",
            "'max_tokens' in both defaults and overrides",
        ),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
    ],
)
def test_config_errors_name_the_yaml_path(tmp_path, enrich, path, message):
    config = write_config(tmp_path, yaml.safe_dump(config_with(enrich)))
    with pytest.raises(ConfigError) as caught:
        load_gateway(str(config))
    where = f"{WHERE}.{path}" if path else WHERE
    line = next((ln for ln in str(caught.value).splitlines() if f": {where}: " in ln), None)
    assert line is not None, str(caught.value)
    assert message in line


def test_a_valid_config_loads(tmp_path):
    config = write_config(tmp_path, yaml.safe_dump(config_with({**ENRICH, **TEMPLATES})))
    gateway = load_gateway(str(config))
    assert [type(p).__name__ for p in gateway.routes[0].policies] == ["EnrichPolicy"]


# =========================================================================== units


DATA = RequestData(
    route="r1",
    model="m1",
    client="user:ann",
    headers={"x-team": "blue"},
    now=dt.datetime(2025, 1, 31, 9, 15, 7, 123456, tzinfo=dt.UTC),
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("plain text", "plain text"),
        ("{route}/{model}/{client}", "r1/m1/user:ann"),
        ("{date} {datetime}", "2025-01-31 2025-01-31T09:15:07Z"),
        ("team {header:X-TEAM}, missing '{header:x-none}'", "team blue, missing ''"),
        ("{{route}} {{{route}}} }}{{", "{route} {r1} }{"),
        ("", ""),
    ],
)
def test_template_rendering(template, expected):
    assert render(parse_template(template), DATA) == expected


@pytest.mark.parametrize(
    "template", ["{", "}", "{route", "{ route}", "{Route}", "{__class__}", "{route.name}"]
)
def test_templates_that_cannot_render_are_rejected(template):
    with pytest.raises(ValueError):
        parse_template(template)


def test_request_values_lose_control_characters_and_are_cut():
    assert clean("a\nb\r\tc\x7f") == "a b  c "
    assert clean("x" * 1000) == "x" * 256


def test_apply_treats_null_as_unset_and_copies_values():
    policy = EnrichPolicy(
        EnrichConfig(
            defaults={"temperature": 0.3, "metadata": {"tier": "free"}},
            overrides={"tools": []},
            remove=["user", "seed"],
        )
    )
    body: dict[str, Any] = {"model": "m", "messages": [], "temperature": None, "user": "u"}
    call = Call(OPENAI_CHAT, Operation.CHAT, "m", body, b"")
    applied = policy.apply(ChatRequestView(call), DATA)
    assert call.edited
    assert body == {
        "model": "m",
        "messages": [],
        "temperature": 0.3,
        "metadata": {"tier": "free"},
        "tools": [],
    }
    assert applied == {
        "prepended": 0,
        "appended": 0,
        "skipped_empty": 0,
        "defaults": ["temperature", "metadata"],
        "overrides": ["tools"],
        "removed": ["user"],
    }
    body["metadata"]["tier"] = "changed"
    assert policy.defaults["metadata"] == {"tier": "free"}
