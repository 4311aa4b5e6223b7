"""Guard in front of every route: bodies must be JSON and at most MAX_BODY_BYTES.

It runs as ASGI middleware so the limit holds before any route reads a byte: a declared
`Content-Length` over the limit is refused at once, and a chunked body is counted as it streams
and refused the moment it passes the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingress.errors import ApiError, error_response

JSON_TYPES = ("application/json",)


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body exceeds MAX_BODY_BYTES ({limit} bytes)")


class BodyGuard:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                response = error_response(
                    400, "invalid_content_length", f"invalid Content-Length {declared!r}"
                )
                await response(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                error = too_large(self.max_bytes)
                await error_response(413, error.code, error.message)(scope, receive, send)
                return
        has_body = (declared is not None and declared != "0") or "transfer-encoding" in headers
        if has_body and not is_json(headers.get("content-type")):
            got = headers.get("content-type") or "none"
            response = error_response(
                415,
                "unsupported_media_type",
                f"Content-Type must be application/json (got {got})",
                field="Content-Type",
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, so FastAPI's body parsing re-raises it untouched and the
                    # app's handler renders it.
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, limited, send)
