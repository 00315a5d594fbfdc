"""modelway: a plugin-based AI gateway on mitmproxy.

The public API for plugin authors is what this module exports; nothing else is promised.
"""

from modelway.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Operation,
    UpstreamRequest,
    Usage,
)
from modelway.config import BackendConfig
from modelway.context import Attempt, AttemptOutcome, Plan, RequestContext
from modelway.errors import ConfigError, GatewayError
from modelway.extension import (
    Provider,
    ProviderSpec,
    StreamDecoder,
    Transport,
    UpstreamResponse,
)
from modelway.ingress import (
    Endpoint,
    IngressAPI,
    LocalAnswer,
    LocalEndpoint,
    NativeStream,
    StreamEncoder,
    WireSupport,
)
from modelway.markers import hookimpl
from modelway.policy import Decision, Policy, PolicySpec
from modelway.runtime import Backend, Gateway, Route
from modelway.services import HealthService, Services, StatsService
from modelway.wire import Call, RequestView, ResponseView, Segment, TextFilter

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "Backend",
    "BackendConfig",
    "Call",
    "CanonicalRequest",
    "CanonicalResponse",
    "ConfigError",
    "Decision",
    "Endpoint",
    "Gateway",
    "GatewayError",
    "HealthService",
    "IngressAPI",
    "LocalAnswer",
    "LocalEndpoint",
    "NativeStream",
    "Operation",
    "Plan",
    "Policy",
    "PolicySpec",
    "Provider",
    "ProviderSpec",
    "RequestContext",
    "RequestView",
    "ResponseView",
    "Route",
    "Segment",
    "Services",
    "StatsService",
    "StreamDecoder",
    "StreamEncoder",
    "TextFilter",
    "Transport",
    "UpstreamRequest",
    "UpstreamResponse",
    "Usage",
    "WireSupport",
    "__version__",
    "hookimpl",
]
