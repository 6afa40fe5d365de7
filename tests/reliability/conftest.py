"""The fault suite's shared pieces: every test is marked `reliability` and records a table row.

`make reliability` (pytest -m reliability) and `make test` print the table at the end (tests/conftest.py,
which the xdist controller loads too): fault, runs, survived, resources leaked, writes made before a refusal.
"""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def reliability_row(request):
    """record(fault, runs=1, survived=True, leaked=0, writes_before_refusal=None, note="")."""

    def record(fault: str, runs: int = 1, survived: bool = True, leaked: int = 0,
               writes_before_refusal: int | None = None, note: str = "") -> None:
        # on the test's reports: under pytest-xdist they reach the controller, which prints the table in
        # a serial run's order: files by name, a file's tests as collected (xdist keeps that order in a file)
        request.node.user_properties.append(("reliability_row", {
            "fault": fault, "runs": runs, "survived": survived, "leaked": leaked,
            "writes_before_refusal": writes_before_refusal, "note": note, "test": request.node.name,
            "file": request.node.nodeid.split("::")[0], "order": request.session.items.index(request.node)}))

    return record
