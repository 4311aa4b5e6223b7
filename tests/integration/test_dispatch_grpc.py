"""gRPC dispatch against a real in-process gRPC server with a generic (stub-free) handler."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from broker_servers import GrpcServer, delivery, wait_until

from services.workers.dispatch.grpc import GrpcDispatcher
from shared.errors import DispatchError, PermanentDispatchError, RetryableDispatchError

METHOD = "/chronos.test.Jobs/Run"


@pytest.fixture
def server() -> Iterator[GrpcServer]:
    srv = GrpcServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def dispatcher() -> Iterator[GrpcDispatcher]:
    made = GrpcDispatcher()
    yield made
    made.close()


def grpc_job(server: GrpcServer, **fields: object) -> dict[str, object]:
    return {"grpc": {"address": server.address, "method": METHOD.lstrip("/"), **fields}}


def test_call_carries_payload_and_id_metadata(
    server: GrpcServer, dispatcher: GrpcDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOS_TEST_GRPC_TOKEN", "s3cret")
    server.answers[METHOD] = b'{"status":"ok","message":"ran","data":{"n":1}}'
    attempt = delivery(
        grpc_job(server, metadata={"Authorization": "${env:CHRONOS_TEST_GRPC_TOKEN}"})
    )

    outcome = dispatcher.dispatch(attempt)

    assert outcome.status_code == 0
    assert outcome.result == {"status": "ok", "message": "ran", "data": {"n": 1}}
    [call] = server.calls
    assert json.loads(call.request) == {"order": 42}
    assert call.metadata["x-chronos-execution-id"] == str(attempt.execution_id)
    assert call.metadata["x-chronos-job-id"] == "dispatch-test"
    assert call.metadata["x-chronos-attempt"] == "1"
    assert call.metadata["x-chronos-scheduled-time"] == "2026-01-02T03:04:05Z"
    assert call.metadata["traceparent"] == attempt.traceparent
    assert call.metadata["authorization"] == "s3cret"


def test_raw_encoding_sends_the_string_as_bytes(
    server: GrpcServer, dispatcher: GrpcDispatcher
) -> None:
    server.answers[METHOD] = b"\x00\x01binary"
    outcome = dispatcher.dispatch(delivery(grpc_job(server, encoding="raw"), payload="raw text"))
    assert server.calls[0].request == b"raw text"
    assert outcome.result is None


def test_unknown_method_fails_permanently(server: GrpcServer, dispatcher: GrpcDispatcher) -> None:
    with pytest.raises(PermanentDispatchError) as caught:
        dispatcher.dispatch(delivery(grpc_job(server)))
    assert "UNIMPLEMENTED" in str(caught.value)
    assert METHOD.lstrip("/") in str(caught.value)
    assert not caught.value.retryable
    assert caught.value.status_code == grpc.StatusCode.UNIMPLEMENTED.value[0]


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.ABORTED, True),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.INTERNAL, False),
    ],
)
def test_status_codes_decide_retry(
    server: GrpcServer, dispatcher: GrpcDispatcher, code: grpc.StatusCode, retryable: bool
) -> None:
    server.answers[METHOD] = code
    with pytest.raises(DispatchError) as caught:
        dispatcher.dispatch(delivery(grpc_job(server)))
    assert caught.value.retryable is retryable
    assert code.name in str(caught.value)
    assert len(server.calls) == 1


@pytest.mark.slow
def test_server_restart_is_survived_by_the_same_dispatcher(dispatcher: GrpcDispatcher) -> None:
    server = GrpcServer().start()
    server.answers[METHOD] = b"{}"
    job = grpc_job(server)
    dispatcher.dispatch(delivery(job, timeout=2))
    server.stop()

    with pytest.raises(RetryableDispatchError):
        dispatcher.dispatch(delivery(job, timeout=2))

    restarted = GrpcServer(server.port)
    restarted.answers[METHOD] = b"{}"
    restarted.start()
    try:
        wait_until(lambda: _succeeds(dispatcher, job), 20, "dispatch after restart")
        assert restarted.calls
    finally:
        restarted.stop()


def _succeeds(dispatcher: GrpcDispatcher, job: dict[str, object]) -> bool:
    try:
        dispatcher.dispatch(delivery(job, timeout=2))
    except RetryableDispatchError:
        return False
    return True
