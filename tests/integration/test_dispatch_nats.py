"""NATS dispatch (publish, request, JetStream) against the real server with JetStream."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from broker_servers import NATS, delivery, private_nats, wait_until
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.workers.dispatch.base import Delivery, Outcome
from services.workers.dispatch.nats import NatsDispatcher
from shared.errors import PermanentDispatchError, RetryableDispatchError
from shared.settings import load_settings


@pytest.fixture
def dispatcher() -> Iterator[NatsDispatcher]:
    made = NatsDispatcher(load_settings())
    yield made
    made.close()


@pytest.fixture
def subject() -> str:
    return f"chronos.test.{secrets.token_hex(5)}"


def nats_job(subject: str, url: str = NATS, **fields: Any) -> dict[str, Any]:
    return {"nats": {"url": url, "subject": subject, **fields}}


def with_responder(
    subject: str, reply: Callable[[Client, Msg], Awaitable[None]], run: Callable[[], Outcome]
) -> Outcome:
    """Run the blocking `run` while a subscriber on `subject` answers with `reply`."""

    async def main() -> Outcome:
        client = await nats.connect(NATS)

        async def respond(msg: Msg) -> None:
            await reply(client, msg)

        try:
            await client.subscribe(subject, cb=respond)
            await client.flush()
            return await asyncio.to_thread(run)
        finally:
            await client.close()

    return asyncio.run(main())


def test_publish_arrives_with_payload_and_ids(dispatcher: NatsDispatcher, subject: str) -> None:
    attempt = delivery(nats_job(subject))

    async def main() -> tuple[Outcome, Msg]:
        client = await nats.connect(NATS)
        try:
            subscription = await client.subscribe(subject)
            await client.flush()
            outcome = await asyncio.to_thread(dispatcher.dispatch, attempt)
            return outcome, await subscription.next_msg(timeout=5)
        finally:
            await client.close()

    outcome, msg = asyncio.run(main())

    assert json.loads(outcome.response or "") == {"flushed": True}
    assert json.loads(msg.data) == {"order": 42}
    assert msg.headers is not None
    assert msg.headers["X-Chronos-Execution-ID"] == str(attempt.execution_id)
    assert msg.headers["Nats-Msg-Id"] == str(attempt.execution_id)
    assert msg.headers["traceparent"] == attempt.traceparent


def test_request_reply_becomes_the_result(dispatcher: NatsDispatcher, subject: str) -> None:
    async def answer(client: Client, msg: Msg) -> None:
        assert msg.headers is not None
        order = json.loads(msg.data)["order"]
        await msg.respond(json.dumps({"status": "ok", "data": order}).encode())

    attempt = delivery(nats_job(subject, mode="request", timeout="2s"))
    outcome = with_responder(subject, answer, lambda: dispatcher.dispatch(attempt))
    assert outcome.result == {"status": "ok", "message": None, "data": 42}


def test_error_reply_is_a_retryable_failure(dispatcher: NatsDispatcher, subject: str) -> None:
    async def answer(client: Client, msg: Msg) -> None:
        await msg.respond(b'{"status":"error","message":"disk full"}')

    attempt = delivery(nats_job(subject, mode="request", timeout="2s"))
    with pytest.raises(RetryableDispatchError, match="disk full"):
        with_responder(subject, answer, lambda: dispatcher.dispatch(attempt))


def test_service_error_header_4xx_is_permanent(dispatcher: NatsDispatcher, subject: str) -> None:
    async def answer(client: Client, msg: Msg) -> None:
        await client.publish(
            msg.reply,
            b"",
            headers={"Nats-Service-Error-Code": "400", "Nats-Service-Error": "bad order"},
        )

    attempt = delivery(nats_job(subject, mode="request", timeout="2s"))
    with pytest.raises(PermanentDispatchError, match="400 bad order") as caught:
        with_responder(subject, answer, lambda: dispatcher.dispatch(attempt))
    assert caught.value.status_code == 400


def test_request_without_responder_fails_retryable(
    dispatcher: NatsDispatcher, subject: str
) -> None:
    with pytest.raises(RetryableDispatchError, match="no responders") as caught:
        dispatcher.dispatch(delivery(nats_job(subject, mode="request", timeout="2s")))
    assert caught.value.retryable


def test_jetstream_ack_and_dedupe_by_execution_id(dispatcher: NatsDispatcher, subject: str) -> None:
    stream = f"CHRONOS_TEST_{secrets.token_hex(4).upper()}"
    attempt = delivery(nats_job(subject, mode="jetstream"))

    async def main() -> tuple[Outcome, Outcome, Any]:
        client = await nats.connect(NATS)
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[subject])
        try:
            first = await asyncio.to_thread(dispatcher.dispatch, attempt)
            again = await asyncio.to_thread(dispatcher.dispatch, attempt)
            stored = await js.get_msg(stream, 1)
            info = await js.stream_info(stream)
            return first, again, (stored, info.state.messages)
        finally:
            await js.delete_stream(stream)
            await client.close()

    first, again, (stored, count) = asyncio.run(main())
    assert json.loads(first.response or "") == {"stream": stream, "seq": 1, "duplicate": False}
    assert json.loads(again.response or "")["duplicate"] is True
    assert count == 1
    assert json.loads(stored.data) == {"order": 42}
    assert stored.headers["Nats-Msg-Id"] == str(attempt.execution_id)
    assert stored.headers["X-Chronos-Job-ID"] == "dispatch-test"


def test_jetstream_without_stream_fails_permanently(
    dispatcher: NatsDispatcher, subject: str
) -> None:
    with pytest.raises(PermanentDispatchError, match="no JetStream stream"):
        dispatcher.dispatch(delivery(nats_job(subject, mode="jetstream", timeout="2s")))


@pytest.mark.slow
def test_credentials_accept_secret_references(
    dispatcher: NatsDispatcher,
    subject: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = secrets.token_hex(8)
    server = private_nats(tmp_path, "--user", "chronos", "--pass", password).start()
    url = f"nats://127.0.0.1:{server.port}"
    monkeypatch.setenv("CHRONOS_TEST_NATS_USER", "chronos")
    password_file = tmp_path / "nats-password"
    password_file.write_text(password + "\n")
    attempt = delivery(
        nats_job(
            subject,
            url=url,
            user="${env:CHRONOS_TEST_NATS_USER}",
            password=f"${{file:{password_file}}}",
        )
    )

    async def main() -> Msg:
        client = await nats.connect(url, user="chronos", password=password)
        try:
            subscription = await client.subscribe(subject)
            await client.flush()
            await asyncio.to_thread(dispatcher.dispatch, attempt)
            return await subscription.next_msg(timeout=5)
        finally:
            await client.close()

    try:
        msg = asyncio.run(main())
        assert json.loads(msg.data) == {"order": 42}
        assert msg.headers is not None
        assert msg.headers["X-Chronos-Execution-ID"] == str(attempt.execution_id)

        wrong = nats_job(subject, url=url, user="chronos", password="wrong", timeout="2s")
        with pytest.raises(PermanentDispatchError, match="Authorization"):
            dispatcher.dispatch(delivery(wrong))
    finally:
        server.stop()


@pytest.mark.slow
def test_server_restart_is_survived_by_the_same_dispatcher(
    dispatcher: NatsDispatcher, subject: str, tmp_path: Path
) -> None:
    server = private_nats(tmp_path).start()
    url = f"nats://127.0.0.1:{server.port}"
    try:

        async def add_stream() -> None:
            client = await nats.connect(url)
            await client.jetstream().add_stream(name="RESTART", subjects=[subject])
            await client.close()

        asyncio.run(add_stream())
        job = nats_job(subject, url=url, mode="jetstream", timeout="2s")
        dispatcher.dispatch(delivery(job))
        server.stop()

        with pytest.raises(RetryableDispatchError):
            dispatcher.dispatch(delivery(job))

        server.start()
        wait_until(lambda: _succeeds(dispatcher, delivery(job)), 30, "dispatch after restart")
    finally:
        server.stop()


def _succeeds(dispatcher: NatsDispatcher, attempt: Delivery) -> bool:
    try:
        dispatcher.dispatch(attempt)
    except RetryableDispatchError:
        return False
    return True
