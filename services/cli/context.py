"""What every subcommand shares: settings and runtime built on first use, and output helpers."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from functools import cached_property
from typing import Any, NoReturn

import click

from shared.runtime import Runtime
from shared.settings import Settings, load_settings


class CliContext:
    @cached_property
    def settings(self) -> Settings:
        return load_settings()

    @cached_property
    def runtime(self) -> Runtime:
        # The pool logs each failed connect while it retries; a command reports the outcome
        # once, as its one-line error.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        return Runtime(self.settings, db_pool_size=2)

    def close(self) -> None:
        if "runtime" in self.__dict__:
            self.runtime.close()


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def parse_json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from exc
