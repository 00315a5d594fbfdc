"""Example provider plugin: the "TextGen" API (see docs/ADD_A_PROVIDER.md for its wire)."""

from typing import Any

from modelway import CanonicalResponse, Provider, ProviderSpec, UpstreamRequest, Usage, hookimpl
from modelway import providerkit as kit


def chunk(choices: list[Any], **extra: Any) -> dict[str, Any]:
    return {"id": "textgen", "object": "chat.completion.chunk", "choices": choices, **extra}


class LinesDecoder(kit.StreamDecoderBase[bytes]):
    rest, complete = b"", False

    def frames(self, data: bytes) -> list[bytes]:
        *lines, self.rest = (self.rest + data).split(b"\n")
        return [line for line in lines if line.strip()]

    def translate(self, line: bytes) -> list[dict[str, Any]]:
        event = kit.event_object(line)
        if "error" in event:
            raise kit.backend_error(502, kit.as_dict(event["error"]).get("message"))
        if not event.get("done"):
            return [chunk([{"index": 0, "delta": {"content": str(event.get("text", ""))}}])]
        self.complete, usage = True, event.get("usage")
        return [chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=usage)]


class TextGenProvider(Provider):
    stream_content_types = ("application/x-ndjson",)

    def build_request(self, ctx: Any, request: Any) -> UpstreamRequest:
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in request.body["messages"])
        body = kit.dumps({"model": request.model, "prompt": prompt, "stream": request.stream,
                          "max_tokens": request.body.get("max_tokens", 256)})
        key = kit.request_key(ctx, self.backend)
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        return UpstreamRequest("POST", f"{self.backend.base_url}/generate", headers, body)

    def parse_response(self, ctx: Any, request: Any, status: int, body: bytes) -> CanonicalResponse:
        data = kit.answer_object(body)
        message = {"role": "assistant", "content": str(data.get("text", ""))}
        answer = {"object": "chat.completion", "model": request.model, "usage": data.get("usage"),
                  "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        return CanonicalResponse(answer, Usage.from_openai(data.get("usage")))

    def stream_decoder(self, ctx: Any, request: Any) -> LinesDecoder:
        return LinesDecoder()

    def parse_error(self, status: int, headers: Any, body: bytes) -> Any:
        def read(status: int, data: Any) -> Any:
            return kit.backend_error(status, kit.as_dict(kit.error_object(data)).get("message"))
        return kit.parse_error(self.backend, status, headers, body, read)


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [ProviderSpec("textgen", TextGenProvider, requires_api_key=True)]
