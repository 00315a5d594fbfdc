"""The metric families the gateway exports, in one registry per gateway process.

OpenTelemetry's gen_ai semantic conventions in their Prometheus form (the names as the
conventions give them, bucket boundaries as they advise), then the gateway's own
`modelway_*` metrics. With `PROMETHEUS_MULTIPROC_DIR` set (the `--workers` supervisor sets
it) every value is written to that directory and `/metrics` adds up all workers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

GEN_AI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model",
          "gen_ai_response_model")  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0)  # fmt: skip


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Families:
    """Every metric object, registered in `registry` (one per gateway's services)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per request (gen_ai semantic conventions)",
            [*GEN_AI, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.request_duration = Histogram(
            "gen_ai_server_request_duration",
            "Seconds from request to the answer's end",
            [*GEN_AI, "error_type"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token",
            "Seconds to the first streamed byte",
            list(GEN_AI),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "gen_ai_server_time_per_output_token",
            "Seconds per output token after the first (streams)",
            list(GEN_AI),
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "modelway_requests",
            "Requests answered, by route, backend, variant, API and status",
            ["route", "backend", "variant", "api", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "modelway_upstream_attempts",
            "Attempts sent upstream, by backend and outcome",
            ["backend", "outcome"],
            registry=r,
        )
        self.failovers = Counter(
            "modelway_failovers",
            "Moves to the next backend, by route and trigger",
            ["route", "backend", "trigger"],
            registry=r,
        )
        self.ejections = Counter(
            "modelway_health_ejections", "Backends taken out of service", ["backend"], registry=r
        )
        self.guards = Counter(
            "modelway_guard_decisions",
            "Guard decisions by guard, stage, entity type and action",
            ["guard", "stage", "entity_type", "action"],
            registry=r,
        )
        self.rejections = Counter(
            "modelway_rejections",
            "Requests refused by governance: rate limits and budgets",
            ["route", "reason"],
            registry=r,
        )
        self.cost = Counter(
            "modelway_cost_usd",
            "Cost of the answers in US dollars (the price table)",
            ["route", "backend", "gen_ai_response_model"],
            registry=r,
        )
        self.inflight = Gauge(
            "modelway_requests_in_flight",
            "Routed requests in flight",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.streams = Gauge(
            "modelway_streams_in_flight",
            "Streamed answers in flight",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.overhead = Histogram(
            "modelway_gateway_overhead_seconds",
            "Seconds spent in the gateway per request, upstream time excluded",
            ["api", "stream"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )


EXPORTED = (
    "gen_ai_client_token_usage", "gen_ai_server_request_duration",
    "gen_ai_server_time_to_first_token", "gen_ai_server_time_per_output_token",
    "modelway_requests_total", "modelway_upstream_attempts_total", "modelway_failovers_total",
    "modelway_health_ejections_total", "modelway_guard_decisions_total",
    "modelway_rejections_total", "modelway_cost_usd_total", "modelway_requests_in_flight",
    "modelway_streams_in_flight", "modelway_gateway_overhead_seconds",
)  # fmt: skip
"""The exported metric names (histograms add `_bucket`, `_sum` and `_count`)."""
