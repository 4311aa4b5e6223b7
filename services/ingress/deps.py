"""Request-scoped values the routes share: the process's Runtime and the raw request body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.ingress.dedupe import Dedupe
from shared.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_dedupe(request: Request) -> Dedupe:
    dedupe: Dedupe = request.app.state.dedupe
    return dedupe


async def raw_body(request: Request) -> bytes:
    """The body as sent: signatures are computed over these exact bytes."""
    return await request.body()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
DedupeDep = Annotated[Dedupe, Depends(get_dedupe)]
RawBody = Annotated[bytes, Depends(raw_body)]
