"""The provider contract: what every `Provider` must do, checked with no network.

A provider supplies a few sample bytes of its wire format in a `ProviderSamples`; the checks
feed them to the provider and say what is wrong. One line in a plugin's own tests runs them
all::

    from modelway.testing.contract import ProviderSamples, check_provider

    def test_contract():
        check_provider(ProviderSamples(name="foo", spec=FOO_SPEC, answer=..., ...))

or one test per check, parametrized over `CHECKS`. The checks:

- a stream cut before its end marker ends with exactly one `upstream_stream_truncated` error
  chunk, and nothing comes after it;
- an error event in a stream ends it: one error chunk, last, and nothing after it;
- a stream decodes the same fed whole or in small pieces;
- usage is read from a non-streamed answer and from a stream;
- the backend rejecting the gateway's key (401/403) is a server-side error whose message holds
  neither the key nor the backend's own message;
- `build_request` sends the gateway's key in a header and never the client's, unless the
  backend has `auth: passthrough` (then the client's, never the gateway's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from modelway.canonical import CanonicalRequest, Operation, UpstreamRequest, Usage
from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.extension import Provider, ProviderSpec, StreamDecoder
from modelway.providerkit import TRUNCATED, is_error_chunk

GATEWAY_KEY = "sk-contract-gateway-key-4f1c9a"
"""The backend's `api_key` in every check; a sample error body may quote it."""
CLIENT_KEY = "sk-contract-client-key-8d2e7b"
"""The key the client sent in every check."""
PIECE = 7
"""The size of the pieces a stream is fed in for the split check."""

Chunk = dict[str, Any]


@dataclass(frozen=True)
class ProviderSamples:
    """One provider under contract: how to build it, and sample bytes of its wire format.

    `stream` is a complete streamed answer; `truncated_stream` is the same stream cut between
    two events before its end marker; `error_stream` reports an error after some output and
    carries on after it (what follows must be ignored). `answer` is a non-streamed answer and
    `usage` the (prompt, completion) tokens that it and `stream` report. `error_body` is the
    backend's answer to a rejected key and `error_message` the message in it.
    """

    name: str
    spec: ProviderSpec
    answer: bytes
    stream: bytes
    truncated_stream: bytes
    error_stream: bytes
    error_body: bytes
    error_message: str
    usage: tuple[int, int]
    options: Mapping[str, Any] = field(default_factory=dict)
    """The backend's provider options, as in YAML."""
    backend: Mapping[str, Any] = field(default_factory=dict)
    """Other backend fields (`base_url`, `headers`, ...)."""
    model: str = "contract-model"

    def provider(self, **backend: Any) -> Provider:
        """The provider for a backend with the gateway's key (and `backend` on top)."""
        fields = {"api_key": GATEWAY_KEY, **self.backend, **backend}
        config = BackendConfig(provider=self.spec.name, model=self.model, **fields)
        return self.spec.factory(config, self._options())

    def _options(self) -> BaseModel | None:
        if self.spec.options_model is None:
            return None
        return self.spec.options_model.model_validate(dict(self.options))

    def request(self, *, stream: bool) -> CanonicalRequest:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": "hi"}],
        }
        if stream:
            body["stream"] = True
        return CanonicalRequest(Operation.CHAT, self.model, body, stream, stream)


def context() -> RequestContext:
    """A request context whose client sent `CLIENT_KEY`."""
    client = ClientInfo("127.0.0.1", "contract", CLIENT_KEY)
    return RequestContext("contract-req-1", "POST", "/v1/chat/completions", "gateway", {}, client)


def decoder(samples: ProviderSamples) -> StreamDecoder:
    return samples.provider().stream_decoder(context(), samples.request(stream=True))


def decode(samples: ProviderSamples, data: bytes, piece: int | None = None) -> list[Chunk]:
    """Every chunk a fresh decoder makes of `data` (fed whole, or in `piece`-byte pieces)."""
    stream = decoder(samples)
    size = piece or max(len(data), 1)
    chunks = [c for i in range(0, len(data), size) for c in stream.feed(data[i : i + size])]
    return chunks + stream.close()


def _fail(samples: ProviderSamples, problem: str) -> None:
    raise AssertionError(f"provider contract, {samples.name}: {problem}")


def _ends_with_one_error(samples: ProviderSamples, chunks: list[Chunk], what: str) -> Chunk:
    errors = [c for c in chunks if is_error_chunk(c)]
    if len(errors) != 1 or chunks[-1] is not errors[0]:
        _fail(samples, f"{what} must end with exactly one error chunk, got {chunks!r}")
    return errors[0]


def _silent_after(samples: ProviderSamples, stream: StreamDecoder, what: str) -> None:
    after = stream.feed(samples.stream) + stream.close()
    if after:
        _fail(samples, f"after {what}, the decoder must return nothing, got {after!r}")


def _usage(chunks: list[Chunk]) -> tuple[int, int] | None:
    found = [Usage.from_openai(c.get("usage")) for c in chunks if c.get("usage")]
    usage = found[-1] if found else None
    return None if usage is None else (usage.prompt_tokens, usage.completion_tokens)


def _text(chunks: list[Chunk]) -> str:
    deltas = (choice.get("delta") or {} for c in chunks for choice in c.get("choices") or ())
    return "".join(d.get("content") or "" for d in deltas)


# --------------------------------------------------------------------------- the checks


def check_truncated_stream(samples: ProviderSamples) -> None:
    """A stream cut before its end marker: one truncation error chunk, last, then silence."""
    stream = decoder(samples)
    chunks = stream.feed(samples.truncated_stream) + stream.close()
    error = _ends_with_one_error(samples, chunks, "a truncated stream")
    if error["error"].get("code") != TRUNCATED:
        _fail(samples, f"a truncated stream's error code must be {TRUNCATED}, got {error!r}")
    _silent_after(samples, stream, "the truncation error")


def check_error_stops_stream(samples: ProviderSamples) -> None:
    """An error event: one error chunk, after the output before it, and nothing after it."""
    stream = decoder(samples)
    chunks = stream.feed(samples.error_stream)
    _ends_with_one_error(samples, chunks, "a stream with an error event")
    _silent_after(samples, stream, "an error chunk")


def check_stream_in_pieces(samples: ProviderSamples) -> None:
    """A stream decodes to the same text and usage, fed whole or in small pieces."""
    whole, pieces = decode(samples, samples.stream), decode(samples, samples.stream, PIECE)
    if any(is_error_chunk(c) for c in whole):
        _fail(samples, f"the good stream must decode without an error, got {whole!r}")
    if (_text(whole), _usage(whole)) != (_text(pieces), _usage(pieces)):
        _fail(samples, f"the stream fed in {PIECE}-byte pieces decodes differently")


def check_answer_usage(samples: ProviderSamples) -> None:
    """Usage is read from a non-streamed answer."""
    provider = samples.provider()
    answer = provider.parse_response(context(), samples.request(stream=False), 200, samples.answer)
    usage = answer.usage
    got = None if usage is None else (usage.prompt_tokens, usage.completion_tokens)
    if got != samples.usage:
        _fail(samples, f"the answer's usage must be {samples.usage}, got {got}")


def check_stream_usage(samples: ProviderSamples) -> None:
    """Usage is read from a stream (its last usage chunk)."""
    got = _usage(decode(samples, samples.stream))
    if got != samples.usage:
        _fail(samples, f"the stream's usage must be {samples.usage}, got {got}")


def check_rejected_key_hidden(samples: ProviderSamples) -> None:
    """A 401/403 for the gateway's own key: a server-side error that leaks nothing."""
    provider = samples.provider()
    for status in (401, 403):
        error = provider.parse_error(status, {}, samples.error_body)
        shown = error.message + repr(error.headers)
        if error.status < 500:
            _fail(samples, f"HTTP {status} for the gateway's key is the gateway's fault, not a 4xx")
        if GATEWAY_KEY in shown or (samples.error_message and samples.error_message in shown):
            _fail(samples, f"HTTP {status}: the error shows the key or the backend's message")


def check_credentials(samples: ProviderSamples) -> None:
    """The gateway's key in a header, never the client's; the reverse with passthrough."""
    for auth, sent, kept in (
        ("gateway", GATEWAY_KEY, CLIENT_KEY),
        ("passthrough", CLIENT_KEY, GATEWAY_KEY),
    ):
        for stream in (False, True):
            wire = samples.provider(auth=auth).build_request(
                context(), samples.request(stream=stream)
            )
            _check_keys(samples, wire, auth, sent, kept)


def _check_keys(
    samples: ProviderSamples, wire: UpstreamRequest, auth: str, sent: str, kept: str
) -> None:
    headers = " ".join(wire.headers.values())
    if sent not in headers:
        _fail(samples, f"auth: {auth} must send the {_whose(sent)} key in a header")
    if kept in headers or kept in wire.url or kept.encode() in wire.body:
        _fail(samples, f"auth: {auth} must never send the {_whose(kept)} key")
    if sent in wire.url or sent.encode() in wire.body:
        _fail(samples, f"auth: {auth}: a key belongs in a header, not the URL or body")


def _whose(key: str) -> str:
    return "gateway's" if key == GATEWAY_KEY else "client's"


CHECKS: tuple[Callable[[ProviderSamples], None], ...] = (
    check_truncated_stream,
    check_error_stops_stream,
    check_stream_in_pieces,
    check_answer_usage,
    check_stream_usage,
    check_rejected_key_hidden,
    check_credentials,
)
"""Every check, for one test per check (`pytest.mark.parametrize("check", CHECKS)`)."""


def check_provider(samples: ProviderSamples) -> None:
    """Run every check on one provider; the first broken promise raises AssertionError."""
    for check in CHECKS:
        check(samples)
