"""Slot seconds *while waiting*: the worker-slot time a task holds because it waits (benchmark 2's target figure).

What counts, per task instance, given its executions in order (the first execution, then each resume after a
deferral, then those of any retry):

* the seconds of the in-worker wait loop during the **first** execution: the whole wait when the wait is
  synchronous (``deferrable=False``), the single probe a deferrable wait makes before it defers (or that finds
  the wait already over, and so does not defer);
* **every later execution in full**: a resume (process start, DAG parse, ``resume_wait``) exists only
  because the task deferred, and a retry only because a resume lost Airflow's defer-exit race.

The first execution's own work (creating the resource, its process start and DAG parse) is the same in both
modes and is not waiting, so it is left out. The in-worker wait loop's seconds come from the line
``plugins/batch_images/triggers/base.py::run_waiter_sync`` logs at its end, e.g.
``Waited 12.345 s in the worker for batch_pool_steady (3 polls): success``; a run whose logs hold no such line
was not measured (never a zero).

Pure functions over log text and figures; no Airflow import.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

WAITED = re.compile(r"Waited (\d+\.\d+) s in the worker for (\S+) \((\d+) polls?\): (\w+)")
# Airflow 3's task runner logs this at the start of every execution of a task instance (the first one and
# each resume), into the same attempt=<try>.log file
EXECUTION_START = "::group::Pre Execute"


@dataclass(frozen=True)
class Wait:
    """One in-worker wait loop: seconds it held the slot, the waiter, its polls, how it ended."""

    seconds: float
    waiter: str
    polls: int
    status: str


def parse_waits(text: str) -> list[Wait]:
    """Every ``Waited <s> s in the worker for <waiter> (<n> polls): <status>`` line of a log text, in order.

    Works on plain-text lines (``airflow dags test``) and on Airflow 3's JSON task log lines (the message is
    the ``event`` field, which JSON leaves as is: no quote or backslash in it)."""
    return [Wait(float(m.group(1)), m.group(2), int(m.group(3)), m.group(4)) for m in WAITED.finditer(text)]


def split_executions(task_log: str) -> list[str]:
    """An Airflow 3 task log file (one try, ``attempt=<n>.log``) cut into its executions: the text from one
    ``::group::Pre Execute`` line to the next. Lines before the first marker belong to the first execution."""
    parts: list[list[str]] = [[]]
    for line in task_log.splitlines():
        if EXECUTION_START in line and any(parts[-1]):
            parts.append([])
        parts[-1].append(line)
    return ["\n".join(p) for p in parts if any(p)]


def execution(slot: float | None, log_text: str = "") -> dict:
    """One execution's figures: ``{"slot": s | None, "waited": s, "waits": n}`` (``waited`` summed over its
    ``Waited`` lines; ``slot`` None when not sampled)."""
    waits = parse_waits(log_text)
    return {"slot": slot, "waited": sum(w.seconds for w in waits), "waits": len(waits)}


def while_waiting(executions: list[dict]) -> float:
    """Slot seconds held while waiting: the first execution's in-worker wait seconds plus every later
    execution's slot seconds (see the module docstring). ``executions``: :func:`execution` dicts, in order."""
    if not executions:
        return 0.0
    return executions[0]["waited"] + sum(e["slot"] or 0.0 for e in executions[1:])


def waited(task: dict) -> bool:
    """The task waited in this run: a ``Waited`` line, or more than one execution (it deferred).
    ``task``: ``{"execs": [...]}``."""
    execs = task.get("execs") or []
    return len(execs) > 1 or any(e["waits"] for e in execs)


def measured(tasks: dict[str, dict]) -> bool:
    """The run's logs hold at least one ``Waited`` line (the plugin logs it): the figure can be trusted."""
    return any(e["waits"] for t in tasks.values() for e in t.get("execs") or [])


def waiting_tasks(*runs: dict[str, dict]) -> list[str]:
    """Names of the tasks that waited in any of the runs (deferrable or synchronous): with the probe before a
    deferral, a wait that is already over at its first poll finishes in the first execution, so the deferrals
    alone would miss it."""
    return sorted({name for run in runs for name, task in run.items() if waited(task)})


def totals(deferrable: dict[str, dict], sync: dict[str, dict]) -> dict:
    """Both runs' slot seconds while waiting, summed over the tasks that waited in either run:
    ``{"tasks": [...], "deferrable": s, "sync": s, "share": deferrable / sync | None, "measured": bool}``;
    ``measured`` is False unless both runs' logs hold ``Waited`` lines."""
    names = waiting_tasks(deferrable, sync)
    d = sum(while_waiting(deferrable[n].get("execs") or []) for n in names if n in deferrable)
    s = sum(while_waiting(sync[n].get("execs") or []) for n in names if n in sync)
    return {"tasks": names, "deferrable": d, "sync": s, "share": d / s if s else None,
            "measured": measured(deferrable) and measured(sync)}
