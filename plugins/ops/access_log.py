"""The access log: one JSON line per request (no prompt text, no secrets), to stdout or a file."""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from modelway import hookimpl

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    path: str | None = None
    """A file to append to; stdout when unset."""


class AccessLogPlugin:
    """Writes each request's access record as one JSON line."""

    Settings = Settings

    def __init__(self) -> None:
        self._out: IO[str] | None = None
        self._owned = False

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        self._close()
        settings = gateway.plugin_settings("access_log") or Settings()
        if not settings.enabled:
            return
        if settings.path:
            try:
                self._out, self._owned = open(settings.path, "a", encoding="utf-8"), True  # noqa: SIM115
            except OSError as exc:
                where = ("plugins", "access_log", "path")
                raise gateway.source.error(
                    [(where, f"cannot open the file: {exc.strerror}")]
                ) from None
        else:
            self._out, self._owned = sys.stdout, False

    @hookimpl
    def modelway_shutdown(self, gateway: Gateway) -> None:
        self._close()

    @hookimpl(trylast=True)
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        if self._out is not None:
            self._out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._out.flush()

    def _close(self) -> None:
        if self._owned and self._out is not None:
            self._out.close()
        self._out, self._owned = None, False
