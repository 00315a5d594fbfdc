"""Built-in plugin `metrics`: Prometheus metrics at `GET /metrics` (opt-in: `plugins: [metrics]`).

Exports OpenTelemetry's gen_ai metrics in their Prometheus form (`gen_ai_client_token_usage`
by `gen_ai_token_type`, `gen_ai_server_request_duration`, `gen_ai_server_time_to_first_token`,
`gen_ai_server_time_per_output_token`, labelled `gen_ai_operation_name`,
`gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_response_model`, `error_type`) and the
gateway's own `modelway_*` metrics (see `families`). Fed by `modelway_request_received`
(in flight), `modelway_attempt_result` (streams in flight) and `modelway_request_done`
(everything else, from the context: attempts, usage, guards' decisions, errors, timings).
Label values are bounded (`labels`): never a key, a user id or free text.

`GET /metrics` is a local endpoint on the gateway's port (it takes a client key when the
gateway has keys) and, with `gateway.metrics_port`, is served without a key on that port (keep
that port inside the cluster). The families live in the gateway's services, so they
outlive reloads; with `--workers` every worker writes to the supervisor's
`PROMETHEUS_MULTIPROC_DIR` and any worker's `/metrics` answers for all of them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from modelway import hookimpl
from modelway.ingress import LocalAnswer, LocalEndpoint
from modelway.plugins.ops.metrics import labels
from modelway.plugins.ops.metrics.exposition import MetricsServer, render
from modelway.plugins.ops.metrics.families import Families
from modelway.plugins.ops.metrics.record import Recorder

if TYPE_CHECKING:
    from modelway.context import Attempt, AttemptOutcome, RequestContext
    from modelway.runtime import Gateway

NAME = "metrics"


class Settings(BaseModel):
    """`plugins: {metrics: {...}}`."""

    model_config = ConfigDict(extra="forbid")


def recorder_of(gateway: Gateway) -> Recorder:
    return gateway.services.setdefault(Recorder, lambda: Recorder(Families()))


async def _metrics(ctx: RequestContext) -> LocalAnswer:
    assert ctx.gateway is not None
    body = await render(recorder_of(ctx.gateway).families)
    return LocalAnswer(200, body, "text/plain; version=0.0.4; charset=utf-8")


class MetricsPlugin:
    """Records every request into the gateway's metric families and serves them."""

    Settings = Settings

    def __init__(self) -> None:
        self._server: MetricsServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        recorder = recorder_of(gateway)
        recorder.models.configure(gateway)

    @hookimpl
    def modelway_local_endpoints(self) -> list[LocalEndpoint]:
        return [LocalEndpoint("GET", "/metrics", _metrics, "metrics")]

    @hookimpl
    def modelway_startup(self, gateway: Gateway) -> None:
        port = gateway.config.gateway.metrics_port
        if port is None:
            return
        self._server = MetricsServer(recorder_of(gateway).families, gateway.config.gateway.host,
                                     port)  # fmt: skip
        self._spawn(self._server.start())

    @hookimpl
    def modelway_shutdown(self, gateway: Gateway) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            self._spawn(server.stop())

    @hookimpl
    def modelway_request_received(self, ctx: RequestContext) -> None:
        if ctx.gateway is not None:
            recorder_of(ctx.gateway).received(ctx)

    @hookimpl(trylast=True)  # after `health` has recorded the outcome (its ejections)
    def modelway_attempt_result(
        self, ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome
    ) -> None:
        if ctx.gateway is not None:
            recorder_of(ctx.gateway).attempt(ctx, attempt, outcome)

    @hookimpl
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        if ctx.gateway is not None:
            recorder_of(ctx.gateway).done(ctx, record)

    def _spawn(self, work: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


__all__ = ["Families", "MetricsPlugin", "Settings", "labels"]
