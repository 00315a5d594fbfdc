"""The `tracing` plugin through a real gateway, exporting over OTLP/HTTP to a real receiver
the test starts (tests/otlp_receiver.py decodes the protobuf export requests).

Checked: the span tree (one SERVER span per request, one CLIENT child per attempt), gen_ai
attributes, the failover hop and the guard's decision as events, no prompt text unless
`capture_content`, the client's `traceparent` as the parent and each attempt's own
`traceparent` sent upstream.
"""

from __future__ import annotations

import json

import openai
import pytest

from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.otlp_receiver import OtlpReceiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SECRET_PROMPT = "my card is 4111 1111 1111 1111"
SERVER, CLIENT = 2, 3  # OTLP span kinds


def failing(received: Received) -> Reply:
    body = json.dumps({"error": {"message": "overloaded", "type": "server_error"}}).encode()
    return Reply(status=503, body=body, headers={"content-type": "application/json"})


def passing(received: Received) -> Reply:
    return Reply.json({"action": "pass"})


def config(receiver: str, primary: str, backup: str, guard: str, capture: bool) -> dict:
    return {
        "plugins": {
            "openai": None, "webhook_guard": None,
            "tracing": {"endpoint": receiver, "export_interval_seconds": 0.05,
                        "service_name": "gw-under-test", "capture_content": capture},
        },
        "backends": {
            "primary": {"provider": "openai", "base_url": primary, "api_key": "sk-p"},
            "backup": {"provider": "openai", "base_url": backup, "api_key": "sk-b",
                       "model": "gpt-4o-mini"},
        },
        "routes": [{"name": "chat", "match": {"model": "gpt-*"}, "backend": "primary",
                    "failover": {"groups": [["backup"]]},
                    "policies": {"webhook_guard": {"url": guard}}}],
    }  # fmt: skip


def one_route(receiver: str, upstream: str, match: str = "*") -> dict:
    """One openai backend behind one route, traced to `receiver`."""
    return {
        "plugins": {"openai": None,
                    "tracing": {"endpoint": receiver, "export_interval_seconds": 0.05}},
        "backends": {"b": {"provider": "openai", "base_url": upstream, "api_key": "k"}},
        "routes": [{"name": "r", "match": {"model": match}, "backend": "b"}],
    }  # fmt: skip


def run(capture: bool = False) -> tuple[list[dict], list[Received], list[dict]]:
    with (
        OtlpReceiver() as receiver,
        UpstreamServer(failing) as primary,
        UpstreamServer(openai_behavior) as backup,
        UpstreamServer(passing) as guard,
    ):
        with run_gateway(config(receiver.url, primary.url, backup.url, guard.url, capture)) as gw:
            sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
            sdk.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": SECRET_PROMPT}],
                temperature=0.5,
                extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
            )
            spans = receiver.wait_for(3)
        return spans, primary.received + backup.received, receiver.resources


@pytest.fixture(scope="module")
def traced() -> tuple[list[dict], list[Received], list[dict]]:
    return run()


def by_kind(spans: list[dict], kind: int) -> list[dict]:
    return [s for s in spans if s["kind"] == kind]


def test_one_server_span_with_a_child_per_attempt(traced):
    spans, _, resources = traced
    (server,) = by_kind(spans, SERVER)
    attempts = sorted(by_kind(spans, CLIENT), key=lambda s: s["start"])
    assert [a["attributes"]["modelway.backend"] for a in attempts] == ["primary", "backup"]
    assert all(a["parent_id"] == server["span_id"] for a in attempts)
    assert all(a["trace_id"] == server["trace_id"] for a in attempts)
    assert server["start"] <= attempts[0]["start"] <= attempts[1]["end"] <= server["end"]
    assert attempts[0]["attributes"]["http.response.status_code"] == 503
    assert attempts[0]["attributes"]["error.type"] == "http_503"
    assert attempts[1]["attributes"]["http.response.status_code"] == 200
    assert {"service.name": "gw-under-test"}.items() <= resources[0].items()


def test_gen_ai_attributes(traced):
    spans, _, _ = traced
    (server,) = by_kind(spans, SERVER)
    attributes = server["attributes"]
    assert server["name"] == "chat gpt-test"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-test"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["http.response.status_code"] == 200
    assert attributes["modelway.route"] == "chat"
    backup = [s for s in by_kind(spans, CLIENT) if s["attributes"]["modelway.backend"] == "backup"]
    assert backup[0]["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"


def test_failover_and_guard_decision_are_events(traced):
    spans, _, _ = traced
    (server,) = by_kind(spans, SERVER)
    events = dict(server["events"])
    assert events["modelway.failover"] == {"modelway.backend": "primary",
                                           "modelway.trigger": "http_503"}  # fmt: skip
    assert events["modelway.guard"]["modelway.guard.guard"] == "webhook_guard"
    assert events["modelway.guard"]["modelway.guard.action"] == "pass"


def test_no_prompt_text_by_default(traced):
    spans, _, _ = traced
    assert SECRET_PROMPT not in json.dumps(spans)
    assert "4111" not in json.dumps(spans)


def test_client_traceparent_is_the_parent_and_each_attempt_sends_its_own(traced):
    spans, upstream, _ = traced
    (server,) = by_kind(spans, SERVER)
    assert server["trace_id"] == CLIENT_TRACE
    assert server["parent_id"] == CLIENT_SPAN
    attempts = {s["attributes"]["modelway.backend"]: s for s in by_kind(spans, CLIENT)}
    sent = [r.headers["traceparent"] for r in upstream]
    assert sent == [
        f"00-{CLIENT_TRACE}-{attempts['primary']['span_id']}-01",
        f"00-{CLIENT_TRACE}-{attempts['backup']['span_id']}-01",
    ]


def test_capture_content_records_the_prompt_when_asked():
    spans, _, _ = run(capture=True)
    (server,) = by_kind(spans, SERVER)
    messages = json.loads(server["attributes"]["gen_ai.input.messages"])
    assert messages == [{"role": "user", "kind": "text", "content": SECRET_PROMPT}]


def test_a_request_without_traceparent_starts_its_own_trace(openai_upstream: UpstreamServer):
    with OtlpReceiver() as receiver:
        cfg = one_route(receiver.url, openai_upstream.url)
        with run_gateway(cfg) as gw:
            sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            spans = receiver.wait_for(2)
        (server,) = by_kind(spans, SERVER)
        assert server["parent_id"] == ""
        sent = openai_upstream.last.headers["traceparent"]
        assert sent.split("-")[1] == server["trace_id"]


def test_the_standard_otel_variables_configure_it(openai_upstream: UpstreamServer, monkeypatch):
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-the-environment")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        cfg = {
            "plugins": {"openai": None, "tracing": {}},
            "backends": {"b": {"provider": "openai", "base_url": openai_upstream.url,
                               "api_key": "k"}},
            "routes": [{"name": "r", "match": {"model": "*"}, "backend": "b"}],
        }  # fmt: skip
        with run_gateway(cfg) as gw:
            sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            spans = receiver.wait_for(2)
        assert len(by_kind(spans, SERVER)) == 1
        assert receiver.resources[0]["service.name"] == "from-the-environment"
        assert receiver.resources[0]["deployment.environment"] == "test"


def test_an_unsampled_trace_records_nothing_and_still_propagates(openai_upstream: UpstreamServer):
    unsampled, sampled = "1" * 32, "2" * 32
    with OtlpReceiver() as receiver:
        cfg = one_route(receiver.url, openai_upstream.url)
        with run_gateway(cfg) as gw:
            sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
            for trace_id, flags in ((unsampled, "00"), (sampled, "01")):
                sdk.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-{flags}"},
                )  # fmt: skip
            spans = receiver.wait_for(2)
        assert {s["trace_id"] for s in spans} == {sampled}  # the parent said: not sampled
        first, second = (r.headers["traceparent"].split("-") for r in openai_upstream.received)
        assert (first[1], first[3]) == (unsampled, "00")
        assert (second[1], second[3]) == (sampled, "01")


def test_a_request_refused_before_routing_has_its_span(openai_upstream: UpstreamServer):
    with OtlpReceiver() as receiver:
        cfg = one_route(receiver.url, openai_upstream.url, "gpt-*")
        with run_gateway(cfg) as gw:
            sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
            with pytest.raises(openai.NotFoundError):
                sdk.chat.completions.create(
                    model="unrouted", messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
                )  # fmt: skip
            with pytest.raises(openai.NotFoundError):
                sdk.get("/no/such/path", cast_to=object)
            sdk.models.list()  # answered by the gateway: no span
            spans = receiver.wait_for(2)
        assert openai_upstream.received == []
        named, unknown = sorted(spans, key=lambda s: s["name"] != "chat unrouted")
        assert named["trace_id"] == CLIENT_TRACE and named["parent_id"] == CLIENT_SPAN
        assert named["attributes"]["http.response.status_code"] == 404
        assert named["attributes"]["error.type"]
        assert unknown["name"] == "GET"
        assert unknown["attributes"]["url.path"] == "/v1/no/such/path"
        assert unknown["attributes"]["http.response.status_code"] == 404
        assert len(spans) == 2
