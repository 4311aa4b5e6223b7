"""The Dramatiq supervisor (`python -m services.workers.launcher`), in Chronos's log format.

Dramatiq's CLI formats its own lines (boot, process deaths, shutdown) with `logging.basicConfig`,
which does nothing once the root logger has a handler: configuring ours first makes the
supervisor's lines JSON like the worker processes' (whose output it relays as written).
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main

from shared.logs import configure_logging
from shared.settings import load_settings


def main() -> int:
    configure_logging(load_settings(), "worker")
    return int(dramatiq_main() or 0)  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    sys.exit(main())
