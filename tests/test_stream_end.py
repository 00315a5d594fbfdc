"""A same-API stream whose end event reached the client is answered: the client closing
before the upstream's EOF is no failure (the access log shows no error)."""

from __future__ import annotations

import http.client
import json

from modelway.testing.fake_openai import openai_stream_chunks
from modelway.testing.upstreams import Reply, UpstreamServer
from modelway.testing.wait import wait_until


def test_client_closing_after_the_end_event_is_no_error(tmp_path, modelway_gateway):
    log = tmp_path / "access.jsonl"
    with UpstreamServer() as upstream:
        gate = upstream.gate()

        def stalled_eof(received):
            def chunks():
                yield from openai_stream_chunks(received.json)  # ends with data: [DONE]
                gate.wait()  # the upstream's EOF comes only after the client left

            return Reply.sse(chunks())

        upstream.behavior = stalled_eof
        gw = modelway_gateway(
            {
                "plugins": {"openai": None, "access_log": {"path": str(log)}},
                "backends": {"up": {"provider": "openai", "base_url": upstream.url}},
                "routes": [{"match": {"model": "*"}, "backend": "up"}],
            }
        )
        body = json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        )
        client = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        try:
            client.request("POST", "/v1/chat/completions", body, {"x-request-id": "req-end"})
            answer = client.getresponse()
            seen = b""
            while b"data: [DONE]" not in seen:
                seen += answer.read1(65536)
        finally:
            client.close()
        record = wait_until(lambda: log.exists() and log.read_text().strip(), what="the log")
        gate.open(all=True)
    line = json.loads(record.splitlines()[-1])
    assert line["request_id"] == "req-end" and line["stream"] is True
    assert line["status"] == 200
    assert "error" not in line
