"""Reading the stand-in's request log the way the zero-writes assertions need it."""
from __future__ import annotations

# POSTs that change nothing. Pool_EvaluateAutoScale: "This API is primarily for validating an autoscale formula, as it
# simply returns the result without applying the formula to the Pool" (Batch REST docs, Pool - Evaluate Auto Scale).
# The stand-in's log marks every POST as a write.
READ_ONLY_POSTS = ("Pool_EvaluateAutoScale",)


def write_counts(standin) -> dict:
    """Since the last clear: ``writes`` (ARM/Batch requests that could change something and succeeded),
    ``write_attempts`` (the same, whatever the status) and ``total`` (every request logged)."""
    log = standin.control.requests(items=True)
    rows = [r for r in log["items"]
            if r["write"] and r["family"] in ("arm", "batch") and r["op"] not in READ_ONLY_POSTS]
    return {"writes": sum(1 for r in rows if r["status"] < 400), "write_attempts": len(rows), "total": log["total"]}
