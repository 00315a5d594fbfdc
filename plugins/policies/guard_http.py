"""What the guards that ask an external HTTP service share: one JSON POST whose failures
become a `ServiceFailed` with a kind that is safe to log (never the body or the prompt)."""

from __future__ import annotations

from typing import Any

import aiohttp


class ServiceFailed(Exception):
    """The service gave no usable answer; `kind` is safe to log."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout | None = None,
) -> Any:
    """The decoded JSON answer of a 2xx reply; raises ServiceFailed otherwise.

    Without `timeout`, the session's own applies (aiohttp reads an explicit None as none).
    """
    options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    try:
        async with session.post(url, json=body, headers=headers, **options) as response:
            if not 200 <= response.status < 300:
                raise ServiceFailed(f"http_{response.status}")
            return await response.json(content_type=None)
    except TimeoutError:
        raise ServiceFailed("timeout") from None
    except aiohttp.ClientError:
        raise ServiceFailed("unreachable") from None
    except ValueError:
        raise ServiceFailed("not_json") from None
