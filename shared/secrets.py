"""Secret references: `${env:NAME}` and `${file:/path}`, resolved only at dispatch time.

Job definitions store the reference text; the resolved value lives only in the memory of the
attempt that uses it, so it never reaches Postgres or a log line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from shared.errors import PermanentDispatchError
from shared.logs import mask

_REF = re.compile(r"\$\{(env|file):([^}]*)\}")
_ANY_REF = re.compile(r"\$\{([^}]*)\}")


def _check_refs(value: str) -> str:
    for match in _ANY_REF.finditer(value):
        inner = match.group(1)
        kind, _, name = inner.partition(":")
        if kind not in ("env", "file") or not name:
            raise ValueError(
                f"bad secret reference ${{{inner}}}: use ${{env:NAME}} or ${{file:/path}}"
            )
    return value


SecretRef = Annotated[str, AfterValidator(_check_refs)]


def resolve(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every reference in `value`; a missing variable or file is a permanent error."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "env":
            if name not in env:
                raise PermanentDispatchError(f"secret reference ${{env:{name}}}: variable not set")
            secret = env[name]
        else:
            try:
                secret = Path(name).read_text().rstrip("\n")
            except OSError as exc:
                raise PermanentDispatchError(
                    f"secret reference ${{file:{name}}}: {exc.strerror}"
                ) from exc
        # Logs redact it wherever it shows up, e.g. echoed back in a target's error body.
        mask(secret)
        return secret

    return _REF.sub(substitute, value)


def is_reference(value: str) -> bool:
    return bool(_REF.search(value))
