"""`chronos queues`: how many messages wait in each broker queue, and for how long."""

from __future__ import annotations

import json
import time

import click

from services.cli.context import CliContext, echo_table
from shared.queues import QueueDepth, read_depths


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _show(depths: list[QueueDepth], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in depths]))
        return
    echo_table(
        ["QUEUE", "READY", "DELAYED", "DEAD", "OLDEST READY", "OLDEST DELAYED", "OLDEST DEAD"],
        [
            [
                d.queue,
                d.ready,
                d.delayed,
                d.dead,
                _age(d.oldest_ready_age),
                _age(d.oldest_delayed_age),
                _age(d.oldest_dead_age),
            ]
            for d in depths
        ],
    )


@click.command()
@click.option("--watch", "-w", is_flag=True, help="Refresh until interrupted.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array per reading.")
@click.pass_obj
def queues(obj: CliContext, watch: bool, interval: float, as_json: bool) -> None:
    """Depth of every queue (ready, delayed, dead-letter) and the age of its oldest message."""
    while True:
        depths = read_depths(obj.settings)
        if watch and not as_json:
            click.clear()
        _show(depths, as_json)
        if not watch:
            return
        time.sleep(interval)
