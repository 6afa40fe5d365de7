"""Smoke test of `make bench`: every benchmark at its smallest size, so the code does not rot.

The figures of a --quick run are not the published ones (tiny pools, a fast stand-in); what is checked is what
a user of `make bench` relies on: one table with every benchmark, the JSON / Markdown / PNG files, each figure
with its unit and verdict, a missed target written as MISSED, and our poll staying at two requests.
"""
from __future__ import annotations

import json

from benchmarks import run as bench_run


def test_quick_bench_writes_table_json_markdown_and_chart(tmp_path, capsys):
    rc = bench_run.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out

    [js] = list(tmp_path.glob("*-quick.json"))
    data = json.loads(js.read_text())
    benches = {b["key"]: b for b in data["benchmarks"]}
    assert set(benches) == set(bench_run.ORDER), benches.keys()
    assert rc == 0, [b["error"] for b in benches.values() if b["error"]]
    for b in benches.values():
        assert b["rows"] and b["measures"] and b["unit"] and b["ratio_reads"], b["key"]
        for row in b["rows"]:
            assert row["status"] in ("met", "MISSED", "not measured", "info"), row
            assert row["status"] != "info" or not row["target"] or row["target"].startswith("("), row

    poll = {r["metric"]: r for r in benches["poll_cost"]["rows"]}
    ours = poll["requests/poll @ 100 nodes"]
    assert ours["ours"] <= 2 and ours["status"] == "met"
    assert poll["response bytes/poll @ 100 nodes"]["reference"] > 10 * poll["response bytes/poll @ 100 nodes"]["ours"]
    assert {r["metric"]: r for r in benches["parse"]["rows"]}[
        "batch_image_pipelines.py: azure.* modules imported"]["ours"] == 0

    md = js.with_suffix(".md").read_text()
    png = js.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    for b in benches.values():
        assert b["title"] in printed and f"## {b['title']}" in md
    missed = [r for b in benches.values() for r in b["rows"] if r["status"] == "MISSED"]
    assert all(f"**MISSED" in md for _ in missed[:1])
    # the slot target's figure comes from the task logs' 'Waited' lines: a number, or "not measured" and none
    slots = {r["metric"]: r for r in benches["worker_slots"]["rows"]}
    waiting = [r for m, r in slots.items() if m.endswith("slot s while waiting")]
    assert waiting and all((r["ours"] is None) == (r["status"] == "not measured") for r in waiting), waiting
    # each row names the time scale it was measured at; the Azure-speed rows are asked for with --azure-speed
    assert "dags test (3000x): slot s while waiting" in slots
    assert "--azure-speed" in slots["real services (1x, Azure's durations): slot s while waiting"]["note"]
    # the fleet ran with ARM's token buckets on at Azure's sizes: its largest 1-s bursts against them, and the 429s
    fleet = {r["metric"]: r for r in benches["fleet"]["rows"]}
    reads = fleet["dags test (3000x): largest ARM read burst in 1 s"]
    assert reads["ours"] >= 1 and "of the 250-read bucket (refilled 25/s)" in reads["note"], reads
    assert fleet["dags test (3000x): largest ARM write burst in 1 s"]["ours"] >= 1
    throttled = fleet["dags test (3000x): 429s from ARM's buckets (Azure's sizes)"]
    assert throttled["target"] == "0" and throttled["status"] == ("met" if throttled["ours"] == 0 else "MISSED")
    budget = benches["fleet"]["detail"]["many"]["arm_budget"]
    assert budget["burst"]["read"] == reads["ours"] and budget["share"]["read"] == reads["ours"] / 250
    # without --services the real-services rows say so (and how to get them) instead of inventing a figure
    absent = [r for b in benches.values() for r in b["rows"] if r["metric"].startswith("real services")]
    assert {r["status"] for r in absent} == {"not measured"} and all("--services" in r["note"] for r in absent)
    assert "not measured" in printed
