"""The run_summary task's output as a test reads it: the text (its XCom return value, also in its log) and the dict
(XCom key ``summary``), checked to say the same."""
from __future__ import annotations

from batch_images.operators.summary import format_summary


def read_summary(result) -> tuple[list[str], dict]:
    """(the summary's lines, the summary dict) of a pipeline_runner RunResult; the text is the dict's
    format_summary and appears in run_summary's log as it is."""
    text, summary = result.xcoms["run_summary:return_value"], result.xcoms["run_summary:summary"]
    assert isinstance(text, str) and isinstance(summary, dict), (type(text), type(summary))
    assert text == format_summary(summary)
    assert text in result.log
    return text.splitlines(), summary
