from collections.abc import Iterator

import pytest
from telemetry_receivers import OtlpReceiver
from worker_fixtures import target, worker_processes

__all__ = ["target", "worker_processes"]


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    """A loopback OTLP/HTTP receiver that keeps every span it is sent."""
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()
