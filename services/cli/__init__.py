"""The `chronos` command: one subcommand per service and per management task."""

from __future__ import annotations

import sys

import click

from services.cli.context import CliContext, fail
from services.cli.dev import dev
from services.cli.jobs import jobs
from services.cli.queues import queues
from services.cli.runs import runs
from services.echo import echo_server
from services.ingress.cli import ingress
from services.ticker.cli import ticker
from services.workers.cli import worker
from shared.errors import ChronosError, ConfigError, JobDefinitionError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chronos-runner", prog_name="chronos")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Chronos: distributed cron and webhook job runner."""
    ctx.obj = CliContext()
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.pass_obj
def migrate(obj: CliContext) -> None:
    """Apply pending database migrations (safe to run twice, or from two processes at once)."""
    from shared.migrate import migrate as run_migrations

    applied = run_migrations(obj.settings.database_url)
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


cli.add_command(jobs)
cli.add_command(runs)
cli.add_command(queues)
cli.add_command(ticker)
cli.add_command(ingress)
cli.add_command(worker)
cli.add_command(dev)
cli.add_command(echo_server)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", code=130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except JobDefinitionError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        fail(f"{len(exc.problems)} problem(s) found; nothing was written")
    except ConfigError as exc:
        fail(f"configuration: {exc}", code=2)
    except ChronosError as exc:
        fail(str(exc))
