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
from modelway.context import Attempt, AttemptOutcome, Plan, RequestContext
from modelway.errors import ConfigError, GatewayError
from modelway.extension import (
    Decision,
    Endpoint,
    IngressAPI,
    LocalAnswer,
    Policy,
    PolicySpec,
    Provider,
    ProviderSpec,
    StreamDecoder,
    StreamEncoder,
    StreamFilter,
)
from modelway.markers import hookimpl

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "CanonicalRequest",
    "CanonicalResponse",
    "ConfigError",
    "Decision",
    "Endpoint",
    "GatewayError",
    "IngressAPI",
    "LocalAnswer",
    "Operation",
    "Plan",
    "Policy",
    "PolicySpec",
    "Provider",
    "ProviderSpec",
    "RequestContext",
    "StreamDecoder",
    "StreamEncoder",
    "StreamFilter",
    "UpstreamRequest",
    "Usage",
    "__version__",
    "hookimpl",
]
