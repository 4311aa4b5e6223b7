"""`chronos ingress`: serve webhooks, the management API and health checks."""

from __future__ import annotations

import click

from shared.settings import load_settings


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port  [default: PORT, 3000]."
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Server processes (each with its own connection pools).",
)
def ingress(host: str, port: int | None, workers: int) -> None:
    """Serve POST /webhook, the management API under /api/v1, /_health and /metrics."""
    from services.ingress.main import serve

    # Fail here, with the variable named, rather than once per server process.
    settings = load_settings()
    serve(host, port or settings.port, workers)
