"""The run_summary task's output as a test reads it: the text (its XCom return value, also in its log) and the dict
(XCom key ``summary``), checked to say the same, with each task's tries as the metadata DB has them."""
from __future__ import annotations

from batch_images.operators.summary import format_summary


def read_summary(result) -> tuple[list[str], dict]:
    """(the summary's lines, the summary dict) of a pipeline_runner RunResult; the text is the dict's
    format_summary and appears in run_summary's log as it is; every stage's tries are its task instance's try
    number, and the text says which were retried."""
    text, summary = result.xcoms["run_summary:return_value"], result.xcoms["run_summary:summary"]
    assert isinstance(text, str) and isinstance(summary, dict), (type(text), type(summary))
    assert text == format_summary(summary)
    assert text in result.log
    db = {t["task"]: t["try"] for t in result.tasks}
    assert {st["task"]: st["tries"] for st in summary["stages"]} == {st["task"]: db[st["task"]]
                                                                     for st in summary["stages"]}
    retried = [f"{st['task']} ({st['tries']} tries)" for st in summary["stages"] if st["tries"] > 1]
    lines = text.splitlines()
    assert (f"retried: {', '.join(retried)}" if retried else "no task was retried") in lines
    return lines, summary


def block(lines: list[str], header: str, n: int) -> list[str]:
    """The ``n`` lines after ``header``."""
    i = lines.index(header)
    return lines[i + 1:i + 1 + n]
