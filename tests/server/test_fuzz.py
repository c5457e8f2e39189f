"""Schemathesis: requests generated from the OpenAPI document never get a 5xx.

Bounded and deterministic (a few examples per operation, derandomized, no example
database), so the run takes seconds and fails the same way every time. Cases come from
schemathesis's Hypothesis strategies rather than its pytest plugin, whose internals
follow pytest's private API and break with new pytest releases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from .conftest import ServerThread, serve

EXAMPLES = 12


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with serve(tmp_path_factory.mktemp("fuzz"), heartbeat=0.2, max_wait=0.5) as srv:
        yield srv


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(fuzz_server: ServerThread) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 23  # every route

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=fuzz_server.url, checks=[not_a_server_error], timeout=10)

        fuzz()
