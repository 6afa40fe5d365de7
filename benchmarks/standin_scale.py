"""Benchmark 7, stand-in scale: can the stand-in serve a 10,000-node pool fast enough not to be the bottleneck?

Measured against the stand-in process: ``Pool_Add`` of an N-node pool, simulated time jumped until every node
is idle (the stand-in derives node states from the pool's ``_sim`` marks, so this is the cost of computing
N node states), one report (``GET /pools/{id}`` + ``GET /nodecounts``), one ``list_nodes`` page (Batch's
maximum page, 1,000 nodes), the full node list, and the stand-in's resident memory (VmRSS, peak VmHWM).
Each figure is measured at N and at a small pool (N/100) in the same run; the ratio shows how it grows.
"""
from __future__ import annotations

import time

from benchmarks.common import Bench, StandIn, median, ratio, verdict

KEY = "standin_scale"


def _figures(standin: StandIn, n: int) -> dict:
    batch = standin.batch()
    pool_id = f"bench-scale-{n}"
    rss0 = standin.rss_bytes()["rss"]
    create = standin.create_marketplace_pool(pool_id, n)
    settle = standin.settle(pool_id, n)
    reports = []
    for _ in range(3):
        t0 = time.perf_counter()
        batch.get_pool(pool_id)
        list(batch.list_pool_node_counts(filter=f"poolId eq '{pool_id}'"))
        reports.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    page = list(next(iter(batch.list_nodes(pool_id).by_page())))
    page_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = sum(1 for _ in batch.list_nodes(pool_id))
    full_s = time.perf_counter() - t0
    if total != n:
        raise RuntimeError(f"list_nodes gave {total} nodes, expected {n}")
    mem = standin.rss_bytes()
    return {"create_s": create, "settle_s": settle, "report_s": median(reports), "page_s": page_s,
            "page_nodes": len(page), "full_list_s": full_s, "rss_before": rss0, "rss_after": mem["rss"],
            "rss_peak": mem["peak"]}


def run(standin: StandIn, nodes: int = 10_000) -> Bench:
    bench = Bench(
        KEY, "Stand-in scale",
        measures=f"the stand-in creating and reporting a {nodes:,}-node pool, a list_nodes page, its memory",
        unit="seconds (client wall, round trip) / MiB (stand-in RSS)",
        ratio_reads=f"{nodes:,} nodes / {max(1, nodes // 100):,} nodes, same run: how the cost grows for 100x nodes",
        reference=f"the same figure for a {max(1, nodes // 100):,}-node pool",
    )
    standin.reset(scale=3000)
    standin.raise_quota(cores=2 * nodes + 2 * (nodes // 100) + 100)
    small = _figures(standin, max(1, nodes // 100))
    big = _figures(standin, nodes)
    mib = 1 << 20
    bench.add("create pool (Pool_Add)", "s", big["create_s"], small["create_s"], ratio(big["create_s"], small["create_s"]))
    bench.add("allocate to all idle (sim-time jumps + reads)", "s", big["settle_s"], small["settle_s"],
              ratio(big["settle_s"], small["settle_s"]))
    ok = big["report_s"] < 1.0
    bench.add("report: get_pool + nodecounts", "s", big["report_s"], small["report_s"],
              ratio(big["report_s"], small["report_s"]), "< 1 s (a tenth of a 10 s poll)", verdict(ok))
    bench.add(f"list_nodes page ({big['page_nodes']} nodes)", "s", big["page_s"], small["page_s"],
              ratio(big["page_s"], small["page_s"]), "< 2 s", verdict(big["page_s"] < 2.0))
    bench.add("list_nodes, every page", "s", big["full_list_s"], small["full_list_s"],
              ratio(big["full_list_s"], small["full_list_s"]))
    bench.add("stand-in RSS after", "MiB", big["rss_after"] / mib, small["rss_after"] / mib,
              ratio(big["rss_after"], small["rss_after"]))
    bench.add("stand-in peak RSS (VmHWM)", "MiB", big["rss_peak"] / mib, None, None, "< 1,024 MiB",
              verdict(big["rss_peak"] / mib < 1024))
    bench.notes.append("the targets here are ours (the issue sets none): the stand-in must answer a poll well "
                       "inside a poll interval and list a page as fast as a client reads it, so that the "
                       "poll-cost and fleet benchmarks measure the clients, not the stand-in")
    bench.detail = {"nodes": nodes, "big": big, "small": small}
    return bench
