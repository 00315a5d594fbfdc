"""A first end-to-end check: the openai SDK through a real gateway to a real upstream."""

from __future__ import annotations

import openai

from modelway.testing.gateway import run_gateway, write_config


def test_chat_through_gateway(tmp_path, upstream):
    config = write_config(
        tmp_path,
        f"""
        plugins: [openai]
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gateway}}
        routes:
          - {{match: {{model: "gpt-*"}}, backend: up}}
    """,
    )
    with run_gateway(config) as gw:
        client = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0))
        answer = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert answer.choices[0].message.content == "echo: hi"
    assert upstream.last.headers["authorization"] == "Bearer sk-gateway"
