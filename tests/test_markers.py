"""The markers of the tests that use a service are set from what each test uses (tests/conftest.py), so that
``pytest -m "not browser"`` leaves out exactly those tests, and a new test is marked without anyone remembering to."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
from pages import ROOT
from services import Node

# Known tests that use each service, and known tests that do not although their names or parameters might suggest so.
MARKED = {
    "postgres": {
        "tests/test_storage.py::test_postgresql_is_reachable",  # asks for the postgres fixture
        "tests/test_storage.py::test_a_submission_id_is_stored_once[postgresql]",  # a parametrized app fixture
        "tests/test_storage.py::test_after_purge_postgresql_rows_share_one_xmin_and_lie_in_id_order",  # through one
        "tests/test_migrations.py::test_the_models_and_the_migrations_do_not_drift[postgresql]",
        "tests/test_faults.py::test_the_database_going_away_answers_503_and_the_app_recovers_when_it_returns",
        "tests/test_deploy_docs.py::test_the_guide_s_role_may_make_the_tables_store_and_purge_and_nothing_more",
        "tests/test_deploy_docs.py::test_gunicorn_serves_pages_and_both_kinds_of_post_under_memory_deny_write_execute"
        "[postgresql and redis]",
    },
    "redis": {
        "tests/test_limits.py::test_redis_counts_a_burst_and_stores_no_address",
        "tests/test_instances.py::test_two_instances_lose_nothing_count_together_and_ride_out_a_database_restart",
        "tests/test_deploy_docs.py::test_the_limiter_counts_in_the_guide_s_redis_and_nothing_reaches_its_disk",
    },
    "node": {
        "tests/test_pow.py::test_the_page_finds_a_stamp_that_the_server_accepts",
        "tests/test_markers.py::test_node_found_through_a_fixture",
    },
    "browser": {
        "tests/test_staff_walkthrough.py::test_two_staff_members_run_the_whole_staff_side_offline",
    },
}
UNMARKED = {
    "postgres": {
        "tests/test_storage.py::test_a_submission_id_is_stored_once[sqlite]",
        "tests/test_storage.py::test_a_bare_postgresql_url_uses_the_installed_psycopg_driver[postgresql]",  # its own
        "tests/test_migrations.py::test_the_models_and_the_migrations_do_not_drift[sqlite]",
        "tests/test_migrations.py::test_a_server_refuses_a_database_at_a_revision_this_code_does_not_know[sqlite]",
        "tests/test_faults.py::test_healthz_is_ready_while_the_database_answers",
        "tests/test_deploy_docs.py::test_gunicorn_serves_pages_and_both_kinds_of_post_under_memory_deny_write_execute"
        "[sqlite]",
    },
    "redis": {
        "tests/test_limits.py::test_an_unreachable_redis_is_a_failure_not_a_skip",
        "tests/test_gunicorn.py::test_papillon_workers_overrides_the_core_count[redis://127.0.0.1:6379/0]",
    },
    "node": {
        "tests/test_pow.py::test_a_solved_stamp_verifies_and_starts_with_the_zero_bits",
        "tests/test_markers.py::test_every_service_has_a_marker_and_every_test_runs_by_default",
    },
    "browser": {
        "tests/test_padding.py::test_every_form_page_has_the_same_size",
    },
}


def collected(marker: str) -> set[str]:
    """The tests ``pytest -m MARKER`` would run, among the files named above."""
    files = sorted({test.split("::")[0] for test in MARKED[marker] | UNMARKED[marker]})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {line for line in result.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize("marker", sorted(MARKED))
def test_a_marker_selects_the_tests_that_use_its_service_and_no_other(marker: str) -> None:
    found = collected(marker)
    assert MARKED[marker] <= found, MARKED[marker] - found
    assert not UNMARKED[marker] & found


def test_every_service_has_a_marker_and_every_test_runs_by_default() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {line.split(":")[0] for line in options["markers"]} == set(MARKED)
    assert "-m" not in options["addopts"].split(), "make test runs every test"


# A test that runs node only through a fixture of its own is marked all the same.
@pytest.fixture
def x25519_in_node(node: Node) -> object:
    return node("envelope.js", {"command": "supports"})


def test_node_found_through_a_fixture(x25519_in_node: object) -> None:
    assert x25519_in_node is True
