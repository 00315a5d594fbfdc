"""The `dashboard` plugin: its page loaded in headless Chromium (Debian's `chromium`) from a real
gateway while traffic flows (an A/B split, a failover, a guard rejection), and the DOM checked
after the page's scripts ran; the screenshot is kept in the test's tmp_path (and copied to
$MODELWAY_DASHBOARD_SCREENSHOT when set: that is how docs/dashboard.png is made). Also: the
admin key (Basic challenge for browsers, bearer for tools), the packaged assets, the JSON."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import openai
import pytest

from modelway.context import ClientInfo, RequestContext
from modelway.plugins.ops.dashboard.timeline import Timeline
from modelway.testing.clock import FakeClock
from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MESSAGES = [{"role": "user", "content": "alpha beta gamma"}]
ADMIN = "sk-admin-dashboard"


def failing(received: Received) -> Reply:
    body = json.dumps({"error": {"message": "overloaded", "type": "server_error"}}).encode()
    return Reply(status=503, body=body, headers={"content-type": "application/json"})


def guard(received: Received) -> Reply:
    texts = " ".join(s["text"] for s in received.json["segments"])
    if "forbidden" in texts:
        return Reply.json({"action": "reject", "message": "not here"})
    return Reply.json({"action": "pass"})


def config(a: str, b: str, down: str, guard_url: str, **gateway: object) -> dict:
    return {
        "gateway": gateway,
        "plugins": {"openai": None, "stats": None, "health": None, "webhook_guard": None,
                    "dashboard": {"poll_seconds": 0.5}},
        "backends": {
            "model-a": {"provider": "openai", "base_url": a, "api_key": "k"},
            "model-b": {"provider": "openai", "base_url": b, "api_key": "k"},
            "flaky": {"provider": "openai", "base_url": down, "api_key": "k"},
        },
        "routes": [
            {"name": "ab-test", "match": {"model": "gpt-ab"},
             "split": {"targets": [{"backend": "model-a", "weight": 50},
                                   {"backend": "model-b", "weight": 50}],
                       "force_header": "x-variant"},
             "policies": {"webhook_guard": {"url": guard_url}}},
            {"name": "resilient", "match": {"model": "gpt-r"}, "backend": "flaky",
             "failover": {"groups": [["model-b"]]}},
        ],
    }  # fmt: skip


@contextmanager
def dashboard_gateway(**gateway: object) -> Iterator[RunningGateway]:
    with (
        UpstreamServer(openai_behavior) as a,
        UpstreamServer(openai_behavior) as b,
        UpstreamServer(failing) as down,
        UpstreamServer(guard) as guard_server,
        run_gateway(config(a.url, b.url, down.url, guard_server.url, **gateway)) as gw,
    ):
        yield gw


def send_traffic(gw: RunningGateway) -> None:
    sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
    for variant in ("model-a", "model-a", "model-b"):
        sdk.chat.completions.create(model="gpt-ab", messages=MESSAGES,
                                    extra_headers={"x-variant": variant})  # fmt: skip
    chunks = sdk.chat.completions.create(model="gpt-ab", messages=MESSAGES, stream=True,
                                         extra_headers={"x-variant": "model-b"})  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    sdk.chat.completions.create(model="gpt-r", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(
            model="gpt-ab", messages=[{"role": "user", "content": "a forbidden topic"}],
            extra_headers={"x-variant": "model-a"},
        )  # fmt: skip


class Dom(HTMLParser):
    """Texts by the id of their nearest identified ancestor, and every element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.texts: dict[str, list[str]] = {}
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        if tag in ("meta", "link", "br", "img", "input"):
            return
        self.stack.append(found.get("id") or (self.stack[-1] if self.stack else None))

    def handle_endtag(self, tag: str) -> None:
        if self.stack and tag not in ("meta", "link", "br", "img", "input"):
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        where = self.stack[-1] if self.stack else None
        if where and data.strip():
            self.texts.setdefault(where, []).append(data.strip())

    def text(self, id_: str) -> str:
        return " | ".join(self.texts.get(id_, []))

    def with_attr(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.elements if name in attrs]


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               "--virtual-time-budget=4000", "--window-size=1280,1500", *args, url]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_in_chromium_shows_routes_variants_charts_and_errors(tmp_path):
    with dashboard_gateway() as gw:
        send_traffic(gw)
        stop = threading.Event()

        def flowing() -> None:  # traffic goes on while the browser loads the page
            sdk = openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0)
            with sdk:
                while not stop.is_set():
                    sdk.chat.completions.create(model="gpt-ab", messages=MESSAGES,
                                                extra_headers={"x-variant": "model-a"})  # fmt: skip

        worker = threading.Thread(target=flowing)
        worker.start()
        try:
            url = gw.url + "/modelway/"
            dumped = chromium(url, tmp_path / "profile", "--dump-dom")
            shot = tmp_path / "dashboard.png"
            chromium(url, tmp_path / "profile2", f"--screenshot={shot}")
        finally:
            stop.set()
            worker.join(30)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = Dom()
    dom.feed(dumped.stdout)
    (body,) = [attrs for tag, attrs in dom.elements if tag == "body"]
    assert int(body["data-polls"] or 0) >= 1  # the page polled its JSON and rendered it
    routes = dom.text("routes")
    for name in ("ab-test", "resilient", "model-a", "model-b", "flaky", "failover 1"):
        assert name in routes
    assert "ejected" not in routes and "healthy" in routes
    variants = dom.text("variants")
    assert "ab-test" in variants and "resilient" in variants
    tables = {attrs["data-route"] for attrs in dom.with_attr("data-route")}
    assert tables == {"ab-test", "resilient"}
    assert "latency p95 (ms)" in variants and "TTFT p50 (ms)" in variants
    (failovers,) = [a for _, a in dom.elements if a.get("id") == "failovers"]
    assert failovers["data-total"] == "1"
    rects = [a for a in dom.with_attr("data-series")]
    assert any(a["data-series"] == "failovers" and a["data-value"] == "1" for a in rects)
    assert any(a["data-series"] == "reject" for a in rects)
    assert "reject 1" in dom.text("guards-legend")
    errors = dom.text("errors")
    assert "400" in errors and "content_rejected" in errors and "ab-test" in errors
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if target := os.environ.get("MODELWAY_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, target)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_chromium_with_the_admin_key_as_basic_credentials_polls_the_data(tmp_path):
    with dashboard_gateway(admin_keys=[ADMIN]) as gw:
        send_traffic(gw)
        keyed = chromium(f"http://admin:{ADMIN}@{gw.host}:{gw.port}/modelway/",
                         tmp_path / "keyed", "--dump-dom")  # fmt: skip
        bare = chromium(gw.url + "/modelway/", tmp_path / "bare", "--dump-dom")
    dom = Dom()
    dom.feed(keyed.stdout)
    (body,) = [attrs for tag, attrs in dom.elements if tag == "body"]
    assert int(body["data-polls"] or 0) >= 1, dom.text("status")
    assert "ab-test" in dom.text("variants")
    assert "ab-test" not in bare.stdout and "data-polls" not in bare.stdout


def test_the_data_is_json_with_variants_side_by_side():
    with dashboard_gateway() as gw:
        send_traffic(gw)
        answer = gw.http("GET", "/modelway/dashboard/data")
    assert answer.status == 200
    data = answer.json
    variants = data["stats"]["routes"]["ab-test"]["variants"]
    assert data["stats"]["routes"]["ab-test"]["requests"] == 5  # one rejected by the guard
    assert variants["model-a"]["requests"] == 2
    assert variants["model-b"]["requests"] == 2 and variants["model-b"]["streams"] == 1
    assert data["stats"]["routes"]["resilient"]["variants"]["model-b"]["requests"] == 1
    assert sum(data["timeline"]["failovers"]) == 1
    assert sum(data["timeline"]["guards"]["reject"]) == 1
    assert sum(data["timeline"]["guards"]["pass"]) == 4
    assert [e["code"] for e in data["timeline"]["last_errors"]] == ["content_rejected"]
    assert "forbidden" not in json.dumps(data)  # no prompt text, no error message


def test_an_admin_key_is_needed_when_keys_are_configured():
    with dashboard_gateway(admin_keys=[ADMIN]) as gw:
        refused = gw.http("GET", "/modelway/")
        basic = base64.b64encode(f"admin:{ADMIN}".encode()).decode()
        page = gw.http("GET", "/modelway/", headers={"authorization": f"Basic {basic}"})
        wrong = base64.b64encode(b"admin:nope").decode()
        denied = gw.http("GET", "/modelway/", headers={"authorization": f"Basic {wrong}"})
        data = gw.http("GET", "/modelway/dashboard/data",
                       headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
        script = gw.http("GET", "/modelway/dashboard/assets/dashboard.js",
                         headers={"x-api-key": ADMIN})  # fmt: skip
        missing = gw.http("GET", "/modelway/dashboard/assets/other.js",
                          headers={"x-api-key": ADMIN})  # fmt: skip
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert denied.status == 401
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b'<script id="initial" type="application/json">{' in page.body
    assert data.status == 200 and data.json["routes"][0]["name"] == "ab-test"
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    assert b"http" not in script.body.replace(b"http://www.w3.org/2000/svg", b"")  # no CDN
    assert missing.status == 404


def failed_request(status: int) -> RequestContext:
    ctx = RequestContext("r1", "POST", "/v1/chat/completions", "h", {}, ClientInfo("a", "ip:a"))
    ctx.status = status
    return ctx


def test_the_timeline_keeps_one_hour_by_minute():
    clock = FakeClock(start=1_000_020.0)
    timeline = Timeline(clock=clock)
    timeline.record(failed_request(502))
    clock.advance(60)
    timeline.record(failed_request(200))
    view = timeline.snapshot()
    assert len(view["minutes"]) == 60 and view["minutes"][-1] == 1_000_020 // 60 * 60 + 60
    assert view["requests"][-2:] == [1, 1] and view["errors"][-2:] == [1, 0]
    clock.advance(59 * 60)
    view = timeline.snapshot()
    assert sum(view["requests"]) == 1  # the first minute has left the hour
    assert [e["status"] for e in view["last_errors"]] == [502]
