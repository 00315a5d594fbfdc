"""Bad Responses requests get a 4xx in OpenAI's error shape, never a 500, on every lane:
unknown or malformed items, bad fields, unknown or other keys' response ids, unsupported
features, wrong methods, bad list parameters. Logged lines carry no prompt text."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from modelway.testing.gateway import RunningGateway
from tests.responses_setup import KEYS, MODELS, Upstreams, gateway_for, upstreams

Json = dict[str, Any]
SECRET = "zebra-violet-7731"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    ups: Upstreams
    with upstreams() as ups, gateway_for(tmp_path_factory.mktemp("bad"), ups.urls) as gateway:
        yield gateway


def send(gw: RunningGateway, method: str, path: str, body: bytes | None = None,
         key: str = KEYS[0], content_type: str = "application/json") -> tuple[int, Json]:
    request = urllib.request.Request(gw.url + path, body, method=method, headers={
        "content-type": content_type, "authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(gw: RunningGateway, body: Any) -> tuple[int, Json]:
    return send(gw, "POST", "/v1/responses", json.dumps(body).encode())


def assert_error(status: int, data: Json, expected: int, code: str | None = None) -> None:
    assert status == expected, data
    error = data["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error


def user(text: str = SECRET) -> Json:
    return {"role": "user", "content": text}


BAD_BODIES = [
    ({"input": "hi"}, "missing_required_parameter", "model"),
    ({"model": 5, "input": "hi"}, "invalid_type", "model"),
    ({"model": "{m}", "input": 5}, None, "input"),
    ({"model": "{m}", "input": [{"type": "teleport", "to": "mars"}]}, "invalid_value",
     "input[0].type"),
    ({"model": "{m}", "input": ["just a string"]}, "invalid_type", "input[0]"),
    ({"model": "{m}", "input": [{"role": "user", "content": 5}]}, None, "input[0].content"),
    ({"model": "{m}", "input": [{"role": "robot", "content": "x"}]}, None, "input[0].role"),
    ({"model": "{m}", "input": [{"type": "function_call_output", "output": "x"}]},
     "missing_required_parameter", "input[0].call_id"),
    ({"model": "{m}", "input": [{"type": "message", "role": "user",
                                 "content": [{"type": "input_video", "url": "x"}]}]}, None,
     "input[0].content[0].type"),
    ({"model": "{m}", "input": "hi", "tools": [{"type": "hologram"}]}, "invalid_value",
     "tools[0].type"),
    ({"model": "{m}", "input": "hi", "temperature": 7}, "invalid_value", "temperature"),
    ({"model": "{m}", "input": "hi", "stream": "yes"}, "invalid_type", "stream"),
    ({"model": "{m}", "input": "hi", "max_output_tokens": 0}, "invalid_value",
     "max_output_tokens"),
    ({"model": "{m}", "input": "hi", "background": True}, "unsupported_parameter", "background"),
    ({"model": "{m}", "input": "hi", "previous_response_id": "resp_nope"},
     "previous_response_not_found", "previous_response_id"),
    ({"model": "{m}", "input": "hi", "text": {"format": {"type": "json_schema"}}}, None,
     "text.format.name"),
]


@pytest.mark.parametrize("kind", ["native", "claude"])
@pytest.mark.parametrize(("body", "code", "param"), BAD_BODIES)
def test_bad_bodies_are_4xx_with_the_param(gw, kind, body, code, param):
    body = {k: (MODELS[kind] if v == "{m}" else v) for k, v in body.items()}
    status, data = post(gw, body)
    assert_error(status, data, 400, code)
    assert data["error"]["param"] == param


def test_not_json_and_wrong_content_type(gw):
    assert_error(*send(gw, "POST", "/v1/responses", b"{nope"), 400, "invalid_json")
    assert_error(*send(gw, "POST", "/v1/responses", b"[1]"), 400, "invalid_body")
    assert_error(*send(gw, "POST", "/v1/responses", b"x=1", content_type="text/plain"), 415)


def test_unknown_model_and_wrong_key(gw):
    assert_error(*post(gw, {"model": "nobody-serves-this", "input": "hi"}), 404,
                 "model_not_found")
    status, data = send(gw, "POST", "/v1/responses", b'{"model":"resp-chat","input":"x"}',
                        key="sk-wrong")
    assert_error(status, data, 401, "invalid_api_key")


def test_wrong_methods_are_405(gw):
    assert_error(*send(gw, "GET", "/v1/responses"), 405, "method_not_allowed")
    assert_error(*send(gw, "DELETE", "/v1/responses/resp_x/input_items"), 405)


def test_unknown_and_other_keys_ids_are_404(gw):
    status, data = post(gw, {"model": MODELS["chat"], "input": "mine"})
    assert status == 200
    rid = data["id"]
    for method, path in (("GET", f"/v1/responses/{rid}"), ("DELETE", f"/v1/responses/{rid}"),
                         ("GET", f"/v1/responses/{rid}/input_items"),
                         ("POST", f"/v1/responses/{rid}/cancel")):
        assert_error(*send(gw, method, path, key=KEYS[1]), 404, "response_not_found")
        assert_error(*send(gw, method, path.replace(rid, "resp_unknown")), 404)
    assert_error(*send(gw, "POST", f"/v1/responses/{rid}/cancel"), 400,
                 "unsupported_operation")
    for query in ("limit=0", "limit=x", "order=up", "after=nope"):
        assert_error(*send(gw, "GET", f"/v1/responses/{rid}/input_items?{query}"), 400)
    assert send(gw, "GET", f"/v1/responses/{rid}")[0] == 200


def test_item_reference_to_an_unknown_item(gw):
    body = {"model": MODELS["chat"], "input": [user(), {"type": "item_reference",
                                                        "id": "msg_unknown"}]}
    assert_error(*post(gw, body), 400, "item_not_found")


def test_item_reference_to_a_stored_output_item(gw):
    status, first = post(gw, {"model": MODELS["chat"], "input": "say apple"})
    item_id = first["output"][0]["id"]
    body = {"model": MODELS["chat"], "input": [{"type": "item_reference", "id": item_id},
                                               user("and now?")]}
    status, data = post(gw, body)
    assert status == 200, data


def test_sdk_errors_are_typed(gw):
    with openai.OpenAI(base_url=gw.base_url, api_key=KEYS[0], max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model=MODELS["gemini"], input=[{"type": "bogus"}])
        assert bad.value.param == "input[0].type"
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve("resp_missing")
        with pytest.raises(openai.BadRequestError):
            with client.responses.stream(model=MODELS["native"], input="x",
                                         previous_response_id="resp_missing") as events:
                list(events)


def test_no_prompt_text_in_the_log(gw, caplog):
    with caplog.at_level("DEBUG"):
        post(gw, {"model": MODELS["claude"], "input": [{"role": "user", "content": 5}],
                  "instructions": SECRET})
        post(gw, {"model": MODELS["claude"], "input": SECRET, "previous_response_id": "r"})
    assert SECRET not in caplog.text
