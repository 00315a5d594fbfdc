"""Failover through a real gateway: fault-injecting upstreams, the official openai SDK.

Primary refuses connections, answers 503 for a while, answers 429 with retry-after, stalls
before the first byte, or drops mid-stream; with a healthy backup the client sees no error.
Also: cross-provider failover, trigger filtering, bounded attempts, one clear error when
every backend fails, and mid-stream continuation inside the same client stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
from anthropic.types import message_create_params

from modelway.testing.fake_anthropic import AnthropicMessages
from modelway.testing.fake_openai import openai_behavior, openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

PROMPT = [{"role": "user", "content": "alpha beta gamma delta epsilon"}]
ANSWER = "echo: alpha beta gamma delta epsilon"
PARAMS = message_create_params.MessageCreateParamsNonStreaming
ANTHROPIC_FIELDS = set(PARAMS.__required_keys__ | PARAMS.__optional_keys__)


def failing(status: int, headers: dict[str, str] | None = None):
    body = json.dumps({"error": {"message": f"primary says {status}", "type": "server_error"}})
    return lambda received: Reply(
        status=status,
        body=body.encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )


def stalling(received: Received) -> Reply:
    """Answers only after a minute (or when the server stops): a backend that hangs."""
    reply = openai_behavior(received)
    reply.stall = 60
    return reply


def dropping_stream(after: int):
    def behave(received: Received) -> Reply:
        request = received.json
        if not request.get("stream"):
            return openai_behavior(received)
        chunks = openai_stream_chunks(request)
        return Reply(headers={"content-type": "text/event-stream"}, chunks=chunks, drop_after=after)

    return behave


def client(gw: RunningGateway) -> openai.OpenAI:
    return gw.resource(
        "openai",
        lambda: openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=30),
    )


def chat(gw: RunningGateway, **kwargs) -> str:
    answer = client(gw).chat.completions.create(model="gpt-test", messages=PROMPT, **kwargs)
    return answer.choices[0].message.content or ""


def stream_text(gw: RunningGateway, **kwargs) -> str:
    chunks = client(gw).chat.completions.create(
        model="gpt-test", messages=PROMPT, stream=True, **kwargs
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@contextmanager
def gateway(tmp_path, primary_url: str, backup_url: str, failover: str) -> Iterator[RunningGateway]:
    config = write_config(
        tmp_path,
        f"""
        plugins: [openai]
        backends:
          primary: {{provider: openai, base_url: "{primary_url}", api_key: sk-p}}
          backup: {{provider: openai, base_url: "{backup_url}", api_key: sk-b}}
        routes:
          - name: chat
            match: {{model: "gpt-*"}}
            backend: primary
            failover: {failover}
        """,
    )
    with run_gateway(config) as gw:
        yield gw


@pytest.fixture
def backup():
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def refused_url(closed_port: int) -> str:
    return f"http://127.0.0.1:{closed_port}/v1"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_refused_primary_fails_over(tmp_path, backup, refused_url, streamed):
    with gateway(tmp_path, refused_url, backup.url, "[[backup]]") as gw:
        text = stream_text(gw) if streamed else chat(gw)
    assert text == ANSWER
    assert backup.last.headers["authorization"] == "Bearer sk-b"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_primary_503_for_a_while_then_recovers(tmp_path, backup, streamed):
    with UpstreamServer(failing(503)) as primary:
        with gateway(tmp_path, primary.url, backup.url, "[[backup]]") as gw:
            during = [stream_text(gw) if streamed else chat(gw) for _ in range(3)]
            primary.behavior = openai_behavior
            after = stream_text(gw) if streamed else chat(gw)
    assert during == [ANSWER] * 3
    assert after == ANSWER
    assert len(backup.received) == 3
    assert len(primary.received) == 4  # tried every time, and served once it recovered


def test_429_with_retry_after_goes_to_the_backup(tmp_path, backup):
    with UpstreamServer(failing(429, {"retry-after": "30"})) as primary:
        with gateway(tmp_path, primary.url, backup.url, "[[backup]]") as gw:
            raw = client(gw).chat.completions.with_raw_response.create(
                model="gpt-test", messages=PROMPT
            )
    assert raw.parse().choices[0].message.content == ANSWER
    assert raw.headers["x-modelway-backend"] == "backup"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_stalled_primary_counts_as_slow(tmp_path, backup, streamed):
    failover = "{groups: [[backup]], first_byte_timeout_seconds: 0.25}"
    with UpstreamServer(stalling) as primary:
        with gateway(tmp_path, primary.url, backup.url, failover) as gw:
            text = stream_text(gw) if streamed else chat(gw)
    assert text == ANSWER
    assert len(backup.received) == 1


def test_only_configured_triggers_fail_over(tmp_path, backup):
    with UpstreamServer(failing(429, {"retry-after": "7"})) as primary:
        failover = "{groups: [[backup]], retry_on: [5xx]}"
        with gateway(tmp_path, primary.url, backup.url, failover) as gw:
            with pytest.raises(openai.RateLimitError) as caught:
                chat(gw)
    assert caught.value.response.headers["retry-after"] == "7"
    assert backup.received == []


def test_client_errors_never_fail_over(tmp_path, backup):
    with UpstreamServer(failing(400)) as primary:
        with gateway(tmp_path, primary.url, backup.url, "[[backup]]") as gw:
            with pytest.raises(openai.BadRequestError):
                chat(gw)
    assert backup.received == []


def test_every_backend_failing_gives_one_clear_error(tmp_path):
    with UpstreamServer(failing(503)) as primary, UpstreamServer(failing(500)) as backup:
        with gateway(tmp_path, primary.url, backup.url, "[[backup]]") as gw:
            with pytest.raises(openai.InternalServerError) as caught:
                chat(gw)
    assert caught.value.status_code == 500  # the last upstream's status
    assert "primary says 500" in str(caught.value)


def test_all_refused_is_502_in_openai_shape(tmp_path, refused_url):
    with gateway(tmp_path, refused_url, refused_url, "[[backup]]") as gw:
        with pytest.raises(openai.APIStatusError) as caught:
            chat(gw)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_unavailable"


def test_attempts_are_bounded(tmp_path):
    with UpstreamServer(failing(503)) as primary, UpstreamServer(failing(503)) as second:
        with UpstreamServer() as third:
            config = write_config(
                tmp_path,
                f"""
                plugins: [openai]
                backends:
                  a: {{provider: openai, base_url: "{primary.url}"}}
                  b: {{provider: openai, base_url: "{second.url}"}}
                  c: {{provider: openai, base_url: "{third.url}"}}
                routes:
                  - match: {{model: "*"}}
                    failover: {{groups: [[a], [b], [c]], max_attempts: 2}}
                """,
            )
            with run_gateway(config) as gw, pytest.raises(openai.InternalServerError):
                chat(gw)
    assert (len(primary.received), len(second.received), len(third.received)) == (1, 1, 0)


def test_priority_groups_are_tried_in_order(tmp_path):
    with UpstreamServer(failing(503)) as a, UpstreamServer(failing(503)) as b:
        with UpstreamServer() as c:
            config = write_config(
                tmp_path,
                f"""
                plugins: [openai]
                backends:
                  a: {{provider: openai, base_url: "{a.url}"}}
                  b: {{provider: openai, base_url: "{b.url}"}}
                  c: {{provider: openai, base_url: "{c.url}"}}
                routes:
                  - match: {{model: "*"}}
                    failover: [[a], [b], [c]]
                """,
            )
            with run_gateway(config) as gw:
                assert chat(gw) == ANSWER
    assert (len(a.received), len(b.received), len(c.received)) == (1, 1, 1)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_cross_provider_failover_answers_in_openai_shape(tmp_path, refused_url, streamed):
    behavior = AnthropicMessages(ANTHROPIC_FIELDS, api_key="sk-ant")
    with UpstreamServer(behavior) as claude:
        config = write_config(
            tmp_path,
            f"""
            plugins: [openai, anthropic]
            backends:
              gpt: {{provider: openai, base_url: "{refused_url}", api_key: sk-p}}
              claude: {{provider: anthropic, base_url: "http://127.0.0.1:{claude.port}",
                        api_key: sk-ant, model: claude-test}}
            routes:
              - match: {{model: "gpt-*"}}
                backend: gpt
                failover: [[claude]]
            """,
        )
        with run_gateway(config) as gw:
            text = stream_text(gw) if streamed else chat(gw)
    assert text == ANSWER
    assert behavior.problems == []
    assert claude.last.json["model"] == "claude-test"


def test_mid_stream_drop_without_continuation_ends_with_an_error(tmp_path, backup):
    with UpstreamServer(dropping_stream(after=3)) as primary:
        with gateway(tmp_path, primary.url, backup.url, "[[backup]]") as gw:
            chunks = client(gw).chat.completions.create(
                model="gpt-test", messages=PROMPT, stream=True
            )
            seen = []
            with pytest.raises(openai.APIError) as caught:
                for chunk in chunks:
                    seen.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "".join(seen) == "echo: alpha beta"  # three chunks, then the break
    assert "ended before it was complete" in str(caught.value)
    assert backup.received == []


@pytest.mark.parametrize("usage", [False, True], ids=["no-usage", "usage"])
def test_mid_stream_drop_continues_on_the_backup(tmp_path, usage):
    def continuing(received: Received) -> Reply:
        request = received.json
        pieces = [" gamma", "delta", "epsilon"]  # a model continuing mid-sentence
        chunks = openai_stream_chunks(request, pieces)
        return Reply(headers={"content-type": "text/event-stream"}, chunks=chunks)

    failover = "{groups: [[backup]], continue_streams: true}"
    extra = {"stream_options": {"include_usage": True}} if usage else {}
    with UpstreamServer(dropping_stream(after=3)) as primary, UpstreamServer(continuing) as backup:
        with gateway(tmp_path, primary.url, backup.url, failover) as gw:
            chunks = list(
                client(gw).chat.completions.create(
                    model="gpt-test", messages=PROMPT, stream=True, **extra
                )
            )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: alpha beta gamma delta epsilon"
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]  # one answer, one first chunk
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    sent = backup.last.json["messages"]
    assert sent[:-2] == PROMPT
    assert sent[-2] == {"role": "assistant", "content": "echo: alpha beta"}
    assert sent[-1]["role"] == "user" and "Continue" in sent[-1]["content"]
    usage_chunks = [c for c in chunks if c.usage]
    assert len(usage_chunks) == (1 if usage else 0)


def test_ejected_primary_is_not_tried_first(tmp_path, backup):
    with UpstreamServer(failing(503)) as primary:
        config = write_config(
            tmp_path,
            f"""
            plugins:
              openai: null
              health: {{failures_to_eject: 2, cooldown_seconds: 60}}
            backends:
              primary: {{provider: openai, base_url: "{primary.url}"}}
              backup: {{provider: openai, base_url: "{backup.url}"}}
            routes:
              - match: {{model: "*"}}
                backend: primary
                failover: [[backup]]
            """,
        )
        with run_gateway(config) as gw:
            answers = [chat(gw) for _ in range(5)]
    assert answers == [ANSWER] * 5
    assert len(primary.received) == 2  # ejected after two failures, then skipped
    assert len(backup.received) == 5
