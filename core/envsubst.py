"""`${VAR}` and `${VAR:-default}` substitution in configuration strings.

`$$` stands for a literal `$`. A `${VAR}` whose variable is unset is an error; the error names
the variable, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingVariable(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"environment variable {name} is not set (use ${{{name}:-default}} to make it optional)"
        )
        self.name = name


def substitute(text: str, environ: Mapping[str, str]) -> str:
    """Replace every variable reference in `text` from `environ`."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:
            return value
        raise MissingVariable(name)

    return _PATTERN.sub(replace, text)
