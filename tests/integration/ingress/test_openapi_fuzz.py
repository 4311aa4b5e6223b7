"""Property-based run over /openapi.json: whatever the generated request, never a 500."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from ingress_app import MakeClient, add_jobs, make_job
from schemathesis import Case, GenerationMode

from shared.runtime import Runtime

# Bounded so the whole run (every operation, valid and invalid input) stays under a minute.
EXAMPLES_PER_OPERATION = 50


def test_no_server_errors(make_client: MakeClient, runtime: Runtime) -> None:
    # Give the generator a few job ids to stumble on, one with a schedule.
    add_jobs(runtime, make_job("a"), make_job("b", schedule="*/5 * * * *"))
    client = make_client()
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_500(case: Case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            if response.status_code >= 400:
                # Errors too are JSON naming the problem.
                assert response.headers["content-type"] == ["application/json"]
                assert response.json()["error"]

        no_500()
