"""`chronos echo-server`: a tiny HTTP target that answers 200 and prints each delivery.

It lets the quickstart show deliveries without a real service, and gives the benchmarks a
target with a fixed latency. Every request is answered `{"status": "ok", "data": {...}}`.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import click


@dataclass(frozen=True)
class Delivery:
    """One request as the target saw it; the ids come from the X-Chronos-* headers."""

    method: str
    path: str
    job_id: str | None
    execution_id: str | None
    attempt: str | None
    body: Any

    def line(self) -> str:
        return (
            f"delivery job={self.job_id or '-'} execution={self.execution_id or '-'} "
            f"attempt={self.attempt or '-'} {self.method} {self.path}"
        )


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many workers connect at once in the benchmarks; the default backlog of 5 drops SYNs.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        *,
        delay: float = 0.0,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        super().__init__(address, _EchoHandler)
        self.delay = delay
        self.on_delivery = on_delivery

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _EchoHandler(BaseHTTPRequestHandler):
    server: EchoServer
    # Keep-alive, so a worker's connection pool is reused as it would be with a real target.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle the body waits ~40 ms for the client's
    # delayed ACK, which would add that to every delivery's latency.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        delivery = Delivery(
            method=self.command,
            path=self.path,
            job_id=self.headers.get("X-Chronos-Job-ID"),
            execution_id=self.headers.get("X-Chronos-Execution-ID"),
            attempt=self.headers.get("X-Chronos-Attempt"),
            body=_decode(raw),
        )
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.server.on_delivery is not None:
            self.server.on_delivery(delivery)
        out = json.dumps({"status": "ok", "data": asdict(delivery)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log: deliveries are printed by `on_delivery`."""


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _print_delivery(delivery: Delivery) -> None:
    click.echo(delivery.line())


@click.command("echo-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait before answering (a slow target).",
)
def echo_server(host: str, port: int, delay: float) -> None:
    """Run a test HTTP target that answers 200 and prints each delivery."""
    server = EchoServer((host, port), delay=delay, on_delivery=_print_delivery)
    # serve_forever() runs in this thread, so shutdown() must come from another one.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    click.echo(f"echo server listening on http://{host}:{server.port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
