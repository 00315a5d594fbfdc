"""The exact sequence of modelway hook calls over a gateway's life and one request.

A recording plugin, registered through `extra_plugins` before the gateway is built, wraps
every hook (`wrapper=True`, so it never changes a result) and notes each call.
"""

from __future__ import annotations

import inspect
from typing import Any

import openai

from modelway import hookimpl, hookspecs
from modelway.testing.gateway import run_gateway, write_config

AT_BUILD = ["modelway_providers", "modelway_policies", "modelway_ingress_apis",
            "modelway_local_endpoints", "modelway_configure"]
PER_REQUEST = ["modelway_authenticate", "modelway_request_received", "modelway_admit",
               "modelway_plan", "modelway_admit", "modelway_upstream_request",
               "modelway_attempt_result", "modelway_request_done"]


class Recorder:
    """Notes (hook name, detail) for every modelway hook, in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def _note(self, name: str, detail: Any = None) -> None:
        self.calls.append((name, detail))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def detail(self, name: str) -> Any:
        (found,) = self.details(name)
        return found

    def details(self, name: str) -> list[Any]:
        return [detail for hook, detail in self.calls if hook == name]

    @hookimpl(wrapper=True)
    def modelway_providers(self):
        self._note("modelway_providers")
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_ingress_apis(self):
        self._note("modelway_ingress_apis")
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_local_endpoints(self):
        self._note("modelway_local_endpoints")
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_policies(self):
        self._note("modelway_policies")
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_request_received(self, ctx):
        self._note("modelway_request_received", (ctx.route.name, ctx.model))
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_authenticate(self, ctx):
        self._note("modelway_authenticate", ctx.path)
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_admit(self, ctx, attempt):
        self._note("modelway_admit", attempt.backend.name if attempt else None)
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_plan(self, ctx, route):
        plan = yield
        self._note("modelway_plan", [a.backend.name for a in plan.attempts] if plan else None)
        return plan

    @hookimpl(wrapper=True)
    def modelway_upstream_request(self, ctx, attempt, request):
        self._note("modelway_upstream_request", (attempt.backend.name, request.url))
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_attempt_result(self, ctx, attempt, outcome):
        self._note("modelway_attempt_result", (outcome.ok, outcome.status))
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_configure(self, gateway):
        self._note("modelway_configure", list(gateway.backends))
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_startup(self, gateway):
        self._note("modelway_startup")
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_shutdown(self, gateway):
        self._note("modelway_shutdown")
        return (yield)

    @hookimpl(wrapper=True)
    def modelway_request_done(self, ctx, record):
        self._note("modelway_request_done", (record["status"], record["stream"]))
        return (yield)


def _config(tmp_path, upstream):
    return write_config(tmp_path, f"""
        plugins:
          openai: null
          access_log: {{enabled: false}}
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gateway}}
        routes:
          - {{name: chat, match: {{model: "gpt-*"}}, backend: up}}
    """)


def test_recorder_wraps_every_hook():
    specs = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
             if name.startswith("modelway_")}
    assert specs == {name for name in dir(Recorder) if name.startswith("modelway_")}
    assert set(AT_BUILD + PER_REQUEST) | {"modelway_startup", "modelway_shutdown"} == specs
    assert len(PER_REQUEST) == len(set(PER_REQUEST)) + 1  # admit: the request, the attempt


def test_hook_sequence_of_one_request(tmp_path, upstream):
    recorder = Recorder()
    with run_gateway(_config(tmp_path, upstream), extra_plugins=(("recorder", recorder),)) as gw:
        before_request = list(recorder.names)
        client = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0))
        answer = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    assert before_request == [*AT_BUILD, "modelway_startup"]
    assert recorder.names == [*AT_BUILD, "modelway_startup", *PER_REQUEST, "modelway_shutdown"]
    assert recorder.detail("modelway_configure") == ["up"]
    assert recorder.detail("modelway_authenticate") == "/v1/chat/completions"
    assert recorder.details("modelway_admit") == [None, "up"]
    assert recorder.detail("modelway_request_received") == ("chat", "gpt-test")
    assert recorder.detail("modelway_plan") == ["up"]
    url = upstream.url + "/chat/completions"
    assert recorder.detail("modelway_upstream_request") == ("up", url)
    assert recorder.detail("modelway_attempt_result") == (True, 200)
    assert recorder.detail("modelway_request_done") == (200, False)
    assert len(upstream.received) == 1


def test_hook_sequence_of_one_streamed_request(tmp_path, upstream):
    recorder = Recorder()
    with run_gateway(_config(tmp_path, upstream), extra_plugins=(("recorder", recorder),)) as gw:
        before_request = list(recorder.names)
        client = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0))
        stream = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "one two"}], stream=True)
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert before_request == [*AT_BUILD, "modelway_startup"]
    assert recorder.names == [*AT_BUILD, "modelway_startup", *PER_REQUEST, "modelway_shutdown"]
    assert recorder.detail("modelway_plan") == ["up"]
    assert recorder.detail("modelway_attempt_result") == (True, 200)
    assert recorder.detail("modelway_request_done") == (200, True)
    assert len(upstream.received) == 1
