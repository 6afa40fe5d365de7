"""The fault suite's shared pieces: every test is marked `reliability` and records a table row.

`make reliability` (pytest -m reliability) prints the table at the end: fault, runs, survived,
resources leaked, writes made before a refusal.
"""
from __future__ import annotations

import pytest

_ROWS: list[dict] = []


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def reliability_row(request):
    """record(fault, runs=1, survived=True, leaked=0, writes_before_refusal=None, note="")."""

    def record(fault: str, runs: int = 1, survived: bool = True, leaked: int = 0,
               writes_before_refusal: int | None = None, note: str = "") -> None:
        _ROWS.append({"fault": fault, "runs": runs, "survived": survived, "leaked": leaked,
                      "writes_before_refusal": writes_before_refusal, "note": note,
                      "test": request.node.name})

    return record


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    w = terminalreporter.write_line
    w("")
    w("Reliability table (what each fault did to a pipeline run against the stand-in)")
    header = f"{'fault':<58} {'runs':>4} {'survived':>8} {'leaked':>6} {'writes before refusal':>21}"
    w(header)
    w("-" * len(header))
    for r in _ROWS:
        wbr = "-" if r["writes_before_refusal"] is None else str(r["writes_before_refusal"])
        w(f"{r['fault'][:58]:<58} {r['runs']:>4} {('yes' if r['survived'] else 'NO'):>8} {r['leaked']:>6} {wbr:>21}")
    refusals = [r for r in _ROWS if r["fault"].startswith(("bad input", "secrets"))]
    failures = [r for r in _ROWS if r not in refusals]
    w(f"{len(_ROWS)} rows; leaks total {sum(r['leaked'] for r in _ROWS)}; "
      f"writes before bad-input refusals total {sum(r['writes_before_refusal'] or 0 for r in refusals)}; "
      f"writes made before a run failed on an injected fault (then cleaned up) "
      f"{sum(r['writes_before_refusal'] or 0 for r in failures)}")
