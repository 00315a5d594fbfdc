"""The Responses API lanes of OpenAI-compatible providers (`openai`, `azure`).

Same-API lane: a Responses client's own body goes to `{base}/responses` (and its stored-
response requests to `{base}/responses/{id}...`), with the model name the route gives and
the changes the gateway needs (`native_changes`: a conversation the gateway stored goes
inline, the gateway's own reasoning items stay out). `api: responses` lane: a hub chat
request becomes a Responses create body, and the answer or stream comes back as hub chat.
"""

from __future__ import annotations

from typing import Any

from modelway.canonical import CanonicalRequest, CanonicalResponse, Usage
from modelway.errors import upstream_error
from modelway.plugins.ingress.responses.call import native_changes
from modelway.plugins.providers.responses.request import to_responses_request
from modelway.plugins.providers.responses.response import from_response
from modelway.providerkit import dumps, loads_or_none
from modelway.wire import Call

RESPONSES_PATH = "/responses"


def native_path(call: Call) -> str:
    """The path below the API base (`/responses`, `/responses/{id}/input_items` ...)."""
    path = call.path.removeprefix("/v1")
    if not path.startswith(RESPONSES_PATH):
        path = RESPONSES_PATH
    return path


def native_query(call: Call) -> str:
    return call.query if call.method != "POST" or call.path != "/v1/responses" else ""


def native_body(call: Call, model: str) -> bytes:
    """The client's body as the same-API lane sends it (`b""` for a request without one)."""
    if call.method != "POST" or not call.body:
        return call.raw
    changes: dict[str, Any] = {"model": model} if call.model and model != call.model else {}
    changes.update(native_changes(call))
    return call.encoded(**changes)


def hub_body(request: CanonicalRequest) -> bytes:
    """A hub chat request as a Responses create body."""
    return dumps(to_responses_request(request.body))


def hub_answer(status: int, body: bytes) -> CanonicalResponse:
    """A Responses answer as a hub `chat.completion`."""
    data = loads_or_none(body)
    if data is None:
        raise upstream_error(
            502, "the backend answered with something that is not JSON",
            "upstream_invalid_response",
        )
    completion = from_response(data)
    return CanonicalResponse(completion, Usage.from_openai(completion.get("usage")), status)
