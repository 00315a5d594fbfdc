"""A test kit for modelway and its plugins, shipped in the package; also a pytest plugin.

- `modelway.testing.gateway`: `run_gateway`, a real gateway from a config dict, YAML text or
  file, on port 0, in a thread (`RunningGateway`, `GatewayStartError`, `write_config`).
- `modelway.testing.upstreams`: `UpstreamServer`, a recording fake upstream answering through
  a behavior (`Received` -> `Reply`, with faults: status, stall, delays, drops, garbage).
- `modelway.testing.fake_openai`, `fake_anthropic`, `fake_gemini`: behaviors that speak each
  provider's wire format (`OpenAIChat`, `AnthropicMessages`, `gemini_behavior`).
- `modelway.testing.wait`: `wait_until` (one polling helper), `bound_socket` / `refused_port`
  (ports read back from bound sockets, never bound and released).
- `modelway.testing.clock`: `FakeClock` and `ManualSleep`, time the test controls.
- `modelway.testing.plugin`: the pytest plugin (entry point `pytest11`): fixtures
  `modelway_gateway`, `modelway_upstream`, `openai_upstream`, `anthropic_upstream`,
  `gemini_upstream`, `fake_clock`.
"""
