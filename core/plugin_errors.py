"""Describes an unexpected exception for the log: which plugin raised it, and where.

The description names the exception's type, the plugin whose code raised it (found from the
traceback's innermost frame that belongs to a registered plugin) and the source location, but
never the exception's message: messages can quote the client's text (a UnicodeEncodeError
shows the string), and the log must not hold prompts or PII.
"""

from __future__ import annotations

import traceback
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway


def plugin_modules(gateway: Gateway) -> dict[str, str]:
    """Module names of the registered plugins, mapped to the plugins' names."""
    out: dict[str, str] = {}
    for name, plugin in gateway.pm.list_name_plugin():
        if plugin is None:
            continue
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        out[module] = name
    return out


def plugin_of(exc: BaseException, gateway: Gateway | None) -> str | None:
    """The plugin whose code raised `exc` (the innermost plugin frame), or None."""
    if gateway is None:
        return None
    owners = plugin_modules(gateway)
    for module in reversed(_frame_modules(exc)):
        for owner, name in owners.items():
            if module == owner or module.startswith(owner + "."):
                return name
    return None


def _frame_modules(exc: BaseException) -> list[str]:
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    return modules


def describe_failure(exc: BaseException, ctx: RequestContext) -> str:
    """`TypeError in plugin 'x' at file.py:12 (function)`, without the exception's text."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} ({frames[-1].name})"
    plugin = plugin_of(exc, ctx.gateway)
    owner = f" in plugin '{plugin}'" if plugin else ""
    return f"{type(exc).__name__}{owner}{where if frames else ''}"
