"""`GET /metrics` of the ingress, and `chronos_webhooks_total{status_code}`.

Webhook answers are counted by ASGI middleware outside every other, so those that never reach a
route (a body too large, a wrong Content-Type, an unhandled error) are counted too.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics

# What the server answers when the app raises before it starts a response.
_UNHANDLED_STATUS = 500

router = APIRouter(include_in_schema=False)


# Sync, so the queue-depth collector's broker round trip runs in the thread pool.
@router.get("/metrics")
def scrape() -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


def is_webhook(path: str) -> bool:
    return path == "/webhook" or path.startswith("/webhooks/")


class WebhookCounter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_webhook(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = _UNHANDLED_STATUS

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            metrics.WEBHOOKS.labels(str(status)).inc()
