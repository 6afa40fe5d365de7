"""Reading the stand-in's request log the way the zero-writes assertions need it."""
from __future__ import annotations

def write_counts(standin) -> dict:
    """Since the last clear: ``writes`` (ARM/Batch requests that could change something and succeeded),
    ``write_attempts`` (the same, whatever the status) and ``total`` (every request logged)."""
    log = standin.control.requests(items=True)
    rows = [r for r in log["items"]
            if r["write"] and r["family"] in ("arm", "batch")]
    return {"writes": sum(1 for r in rows if r["status"] < 400), "write_attempts": len(rows), "total": log["total"]}
