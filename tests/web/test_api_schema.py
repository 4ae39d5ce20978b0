"""Property-based tests of the JSON API from its own OpenAPI document (schemathesis):
every operation, called with generated bodies, paths and queries by an authenticated
principal, answers without a server error. Examples are bounded to keep `make test`
short; the demo district of the web tests is the data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from web_support import DemoSite


@pytest.fixture(scope="session")
def principal_token(site: DemoSite) -> str:
    # The principal issues it for themselves (nobody issues a token for another account).
    principal = site.app.gate.actor(site.app.accounts.account("principal1")[0])
    return site.app.accounts.issue_token(principal, "schemathesis", scope="write")


def test_no_operation_answers_with_a_server_error(site: DemoSite, principal_token: str) -> None:
    # schemathesis's pytest plugin (from_fixture) does not run under pytest 9, so each
    # operation's strategy is driven by hypothesis here, the same way the plugin would.
    schema = schemathesis.openapi.from_asgi("/openapi.json", site.web)
    headers = {"Authorization": f"Bearer {principal_token}"}
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: Any) -> None:
            response = case.call(headers=headers)
            statuses.append(response.status_code)
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except Exception as e:  # noqa: BLE001 - collected, reported all together below
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {e}")
                return
            content_type = response.headers["content-type"]
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            assert content_type.startswith(("application/json", "text/csv")), (
                f"{case.method} {case.formatted_path}: {content_type}"
            )

        call()
    assert operations >= 60, "every route of /api/v1 is in the OpenAPI document"
    assert not failures, "\n".join(failures[:20])
    # The calls reached the application (authenticated, past validation), not only its doorstep.
    print(sorted(Counter(statuses).items()))
    assert 401 not in statuses and sum(1 for s in statuses if s == 200) >= 10
