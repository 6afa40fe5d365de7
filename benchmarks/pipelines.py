"""Benchmarks 2, 5 and 4: whole pipeline runs (``airflow dags test`` in a child process, include/pipeline_runner.py).

* **Worker-slot seconds** (2): the seconds a task held a worker slot, per waiting task, in a run with the
  defaults (waits defer) and in a run where every wait is synchronous. ``airflow dags test`` runs deferred
  triggers in line, in the same process, and logs ``running trigger in line`` / ``Trigger completed`` around
  each: a task's slot time is ``end task - starting`` minus its in-line trigger time (what a deployment hands
  to the triggerer). The synchronous run uses a DAG file that imports dags/batch_image_pipelines.py and sets
  ``deferrable=False`` on every task that has it, with ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=False`` (the
  pool sensor's default). Task-instance durations from the metadata DB are reported beside them: they include
  deferred time, so they are the same in both runs and do not measure slots.
* **Fleet** (5): one pipeline with many pools in 3 regions against the same pipeline with one pool: wall ratio,
  ARM and Batch requests per run, ARM reads against Azure's 12,000 reads per hour per principal.
* **Orchestration overhead** (4): DAG wall time / the stand-in's critical path (snapshots -> managed image ->
  version incl. replication -> pool allocation: the simulated durations the stand-in gave each, read from its
  ``_sim`` bookkeeping while the run goes, divided by the time scale).
"""
from __future__ import annotations

import json
import re
import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from benchmarks.common import INFO, NOT_MEASURED, Bench, StandIn, ratio, verdict

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
# every pipeline of these benchmarks replicates to the same 3 regions: the one-pool run is both the slot and
# overhead run and the fleet's reference
REGIONS = ["westeurope", "northeurope", "swedencentral"]
ARM_READS_PER_HOUR = 12_000  # Azure Resource Manager: reads per hour per principal (subscription scope)
_LINE = re.compile(r"^(\S+Z) .*?\[DAG TEST\] (starting|end task|running trigger in line|Trigger completed)"
                   r"(?:.*?task_id=(\S+) map_index=(-?\d+))?")

SYNC_DAG_FILE = '''"""bench: the project's DAGs with every wait synchronous (deferrable=False), for the worker-slot benchmark."""
import runpy
from airflow.sdk import DAG

_ns = runpy.run_path({path!r}, run_name="batch_image_pipelines_sync")
for _name, _dag in list(_ns.items()):
    if isinstance(_dag, DAG):
        for _task in _dag.tasks:
            # mapped tasks (the pool sensor) take their default from AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE
            if not hasattr(_task, "partial_kwargs") and hasattr(_task, "deferrable"):
                _task.deferrable = False
        globals()[_name] = _dag
'''


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def dag_span(log_text: str) -> float | None:
    """Seconds from the first task's start to the last task's end in a dags-test log (Airflow's own start-up
    and DB reads before the first task are left out)."""
    marks = [(_ts(m.group(1)), m.group(2)) for m in map(_LINE.match, log_text.splitlines()) if m]
    starts = [t for t, w in marks if w == "starting"]
    ends = [t for t, w in marks if w == "end task"]
    return (max(ends) - min(starts)) if starts and ends else None


def slot_seconds(log_text: str) -> dict[str, dict]:
    """Per task (``task`` or ``task[i]``): ``{"slot": s, "trigger": s, "deferrals": n}`` from a dags-test log."""
    out: dict[str, dict] = {}
    current, started, trig_start = None, 0.0, None
    for line in log_text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t, what = _ts(m.group(1)), m.group(2)
        if what == "starting":
            current = m.group(3) + (f"[{m.group(4)}]" if m.group(4) not in (None, "-1") else "")
            started = t
            out[current] = {"slot": 0.0, "trigger": 0.0, "deferrals": 0}
        elif what == "running trigger in line" and current:
            trig_start = t
        elif what == "Trigger completed" and current and trig_start is not None:
            out[current]["trigger"] += t - trig_start
            out[current]["deferrals"] += 1
            trig_start = None
        elif what == "end task" and current:
            out[current]["slot"] = (t - started) - out[current]["trigger"]
            current = None
    return out


class SimWatcher:
    """Reads the stand-in's SQLite store (read-only) while a run goes, keeping each document's ``_sim`` marks:
    the snapshots and the managed image are deleted by the teardown before the run ends."""

    def __init__(self, db: Path):
        self.db, self.seen, self._stop = db, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self._read()

    def _read(self) -> None:
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
            rows = con.execute("SELECT kind, key, body FROM docs WHERE body LIKE '%\"lro\"%'").fetchall()
            con.close()
        except sqlite3.Error:
            return
        for kind, key, body in rows:
            sim = (json.loads(body).get("_sim") or {})
            self.seen[(kind, key)] = {"lro": sim.get("lro"), "regions": sim.get("regions")}

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            self._read()

    def critical_path_sim(self) -> dict:
        """Simulated seconds of each stage on the chain snapshots -> image -> version (+replication)."""
        stages: dict[str, float] = {}
        for (kind, _key), sim in self.seen.items():
            lro = sim.get("lro") or {}
            if not lro:
                continue
            end = lro["done_at"]
            for r in sim.get("regions") or []:
                end = max(end, r["start"] + r["duration"])
            name = {"snapshot": "snapshots", "image": "managed image", "gallery_image_version": "version + replication"}
            label = next((v for k, v in name.items() if kind == k), None)
            if label:
                stages[label] = max(stages.get(label, 0.0), end - lro["start"])
        return stages


def _pipeline(standin: StandIn, dag_id: str, pools: int, regions: list[str], nodes: int) -> dict:
    from tests.reliability.pipeline_harness import pipeline_config

    cfg = pipeline_config(standin.endpoints, dag_id, regions=regions, pool={"target_dedicated_nodes": nodes})
    base = cfg["pools"][0]
    cfg["pools"] = [dict(base, pool_id_prefix=f"{base['pool_id_prefix']}{i}" if pools > 1 else base["pool_id_prefix"])
                    for i in range(pools)]
    return cfg


def _write_config(standin: StandIn, directory: Path, dag_id: str, pools: int, regions: list[str], nodes: int) -> None:
    from include.pipeline_runner import write_pipeline

    cfg = _pipeline(standin, dag_id, pools, regions, nodes)
    cfg["schedule"] = None  # only the benchmark's runs: unpausing a scheduled DAG would start one of its own
    write_pipeline(directory, cfg)


def _prepare(standin: StandIn, pools: int, nodes: int, scale: float) -> int:
    """Reset the stand-in to its seeded fixture at ``scale``, with quota for the run; the request id to count from."""
    standin.reset(scale=scale)
    standin.raise_quota(cores=2 * nodes * pools + 100)
    return standin.last_request_id()


def _figures(standin: StandIn, label: str, since: int, watch: SimWatcher, scale: float, pools: int) -> dict:
    """What the stand-in saw of a run: requests by family, ARM reads, the critical path's stages (seconds)."""
    log = standin.requests_since(since, items=True)
    items = log.pop("items")
    stages = {k: v / scale for k, v in watch.critical_path_sim().items()}
    pool_ids = _pool_ids(standin)
    if len(pool_ids) != pools:
        raise RuntimeError(f"run {label} left {len(pool_ids)} pools, expected {pools}")
    stages["pool allocation"] = max(_pool_ready_seconds(standin, items, scale, p) for p in pool_ids)
    return {"arm": log["by_family"].get("arm", 0), "batch": log["by_family"].get("batch", 0),
            "arm_reads": sum(1 for r in items if r["family"] == "arm" and r["method"] == "GET"),
            "critical_path": stages}


def run_pipeline(standin: StandIn, workdir: Path, label: str, *, pools: int = 1, regions: list[str] | None = None,
                 nodes: int = 2, sync: bool = False, scale: float = 60.0) -> dict:
    """Reset the stand-in, run one pipeline with ``airflow dags test``; figures of the run."""
    from include.pipeline_runner import run_dag_test

    regions = regions or REGIONS
    # a new dag_id per invocation: `airflow dags test` of a date that already has a finished run in the
    # metadata DB would find that run done and do nothing
    dag_id = f"bench_{label}_{int(time.time() * 1000) % 10 ** 9}"
    pipes = workdir / f"pipelines-{label}"
    _write_config(standin, pipes, dag_id, pools, regions, nodes)
    env = standin.connection_env()
    if sync:
        dags = workdir / f"dags-{label}"
        dags.mkdir(parents=True, exist_ok=True)
        (dags / "batch_image_pipelines_sync.py").write_text(
            SYNC_DAG_FILE.format(path=str(Path(__file__).resolve().parents[1] / "dags" / "batch_image_pipelines.py")))
        env.update(AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="False", AIRFLOW__CORE__DAGS_FOLDER=str(dags))
    env["BATCH_IMAGES_RETRY_DELAY_SECONDS"] = "1"  # a failed try shows at once instead of after minutes
    since = _prepare(standin, pools, nodes, scale)
    with SimWatcher(standin.proc.state_dir / "standin.db") as watch:
        result = run_dag_test(dag_id, LOGICAL_DATE, workdir / f"{label}.log", env=env, pipelines_dir=pipes)
    if result.state != "success":
        raise RuntimeError(f"run {label} ended {result.state} (exit {result.exit_code}); log {result.log_path}")
    return {"label": label, "wall": result.wall_seconds, "dag_seconds": dag_span(result.log),
            "tasks": result.tasks, "slots": slot_seconds(result.log),
            **_figures(standin, label, since, watch, scale, pools),
            "scale": scale, "pools": pools, "regions": regions, "nodes": nodes}


def run_services(standin: StandIn, workdir: Path, *, fleet_pools: int, nodes: int = 2,
                 scale: float = 60.0, only: tuple[str, ...] = ()) -> dict[str, dict]:
    """The one-pool run (deferrable and synchronous) and the fleet run under the real services (benchmarks/services.py):
    label -> the figures :func:`run_pipeline` gives, plus the triggerer's memory and the stack's start-up."""
    from benchmarks.services import ServicesStack

    stamp = int(time.time() * 1000) % 10 ** 9
    runs = {"svc_one": dict(pools=1, sync=False), f"svc_fleet_{fleet_pools}": dict(pools=fleet_pools, sync=False),
            "svc_one_sync": dict(pools=1, sync=True)}
    runs = {k: v for k, v in runs.items() if not only or k in only}
    pipes = workdir / "pipelines-services"
    for label, spec in runs.items():
        spec["dag_id"] = f"bench_{label}_{stamp}"
        _write_config(standin, pipes, spec["dag_id"], spec["pools"], REGIONS, nodes)
    out: dict[str, dict] = {}
    services = ServicesStack(standin, workdir, pipes)
    try:
        for label, spec in runs.items():
            services.ensure(deferrable=not spec["sync"])
            print(f"[bench]   real services: {label} ...", file=sys.stderr, flush=True)
            since = _prepare(standin, spec["pools"], nodes, scale)
            try:
                with SimWatcher(standin.proc.state_dir / "standin.db") as watch:
                    run = services.run(spec["dag_id"], LOGICAL_DATE)
            except (RuntimeError, TimeoutError) as err:  # the other runs' figures still count
                out[label] = {"label": label, "error": str(err)[:1500]}
                print(f"[bench]   {label} failed: {str(err)[:1500]}", file=sys.stderr, flush=True)
                continue
            out[label] = {"label": label, "wall": run.trigger_to_end, "dag_seconds": run.dag_seconds,
                          "slots": run.slots, "triggerer_peak": run.triggerer_peak,
                          "triggerer_idle": run.triggerer_idle,
                          **_figures(standin, label, since, watch, scale, spec["pools"]),
                          "scale": scale, "pools": spec["pools"], "regions": REGIONS, "nodes": nodes}
    finally:
        services.close()
    for run in out.values():
        run["stack_start_seconds"] = services.start_seconds
    return out


def _pool_ids(standin: StandIn) -> list[str]:
    return [p.id for p in standin.batch().list_pools()]


def _pool_ready_seconds(standin: StandIn, items: list[dict], scale: float, pool_id: str) -> float:
    """Real seconds from the pool's Pool_Add (stand-in sim time) to its last node idle and allocation steady."""
    from benchmarks.detection import _epoch

    batch = standin.batch()
    pool = batch.get_pool(pool_id)
    ready = max([_epoch(pool.allocation_state_transition_time)]
                + [_epoch(n.state_transition_time) for n in batch.list_nodes(pool_id)])
    added = min((r["sim_ts"] for r in items if r["op"] == "Pool_Add" and r["status"] < 300
                 and r["path"].rstrip("/").endswith("/pools")), default=None)
    return 0.0 if added is None else max(0.0, ready - added) / scale


_RUNS: dict[str, dict] = {}
# set by benchmarks/run.py --services: the real-services rows are measured too (a stack start and three runs)
SERVICES = {"enabled": False}
AIRFLOW_RACE = ("a resumed task is failed by the scheduler's stale 'success' of its defer-exit (apache/airflow#72716, "
                "#71580; fixes open), then retried")


def _cached(standin, workdir, label, **kw) -> dict:
    if label not in _RUNS:
        _RUNS[label] = run_pipeline(standin, workdir, label, **kw)
    return _RUNS[label]


def _scale(quick: bool) -> float:
    return 3000.0 if quick else 60.0  # 60: the demo's scale; 3000: the tests'


def _fleet_pools(quick: bool) -> int:
    return 3 if quick else 50


def _services(standin: StandIn, workdir: Path, quick: bool) -> dict[str, dict] | None:
    """The real-services runs (once per invocation), or None when not asked for."""
    if not SERVICES["enabled"]:
        return None
    if "services" not in _RUNS:
        _RUNS["services"] = run_services(standin, workdir, fleet_pools=_fleet_pools(quick), scale=_scale(quick))
    return _RUNS["services"]


def _not_run(bench: Bench, metric: str, target: str, why: str) -> None:
    bench.add(metric, "-", None, None, None, target, NOT_MEASURED, note=why)


def _svc_missing(svc: dict | None, *labels: str) -> str | None:
    """Why the real-services rows are absent: not asked for, or a run failed (its error); None when all ran."""
    if svc is None:
        return "real services not run: make bench BENCH_ARGS=--services"
    bad = [f"{label}: {svc[label]['error']}" for label in labels if svc.get(label, {}).get("error")]
    return "; ".join(bad) or None


def _retried(*runs: dict) -> list[str]:
    return sorted({t for r in runs for t, s in (r.get("slots") or {}).items() if s.get("tries", 1) > 1})


def run_slots(standin: StandIn, workdir: Path, quick: bool = False) -> Bench:
    bench = Bench(
        "worker_slots", "Worker-slot seconds",
        measures="seconds the waiting tasks held a worker slot during one pipeline run (1 pool, 3 regions), waits "
                 "deferred vs synchronous, under airflow dags test and under the real services",
        unit="slot seconds. dags test: task time minus in-line trigger time (its log). Real services: the time a "
             "LocalExecutor worker process ran the task instance (its process title names the task instance from "
             "taking the workload off the queue until the result is reported), sampled every 0.05 s from /proc, "
             "summed over the first execution and each resume",
        ratio_reads="deferrable / synchronous: the share of the synchronous slot time the default run still holds",
        reference="the same pipeline with deferrable=False on every wait",
    )
    scale = _scale(quick)
    dfr = _cached(standin, workdir, "one_pool", scale=scale)
    syn = _cached(standin, workdir, "one_pool_sync", scale=scale, sync=True)
    waiting = sorted(t for t, s in dfr["slots"].items() if s["deferrals"])
    for t in waiting:
        a, b = dfr["slots"][t]["slot"], syn["slots"].get(t, {}).get("slot")
        bench.add(f"dags test: {t}", "slot s", a, b, ratio(a, b))
    tot_d = sum(dfr["slots"][t]["slot"] for t in waiting)
    tot_s = sum(syn["slots"].get(t, {}).get("slot", 0.0) for t in waiting)
    share = ratio(tot_d, tot_s)
    bench.add("dags test: waiting tasks, total", "slot s", tot_d, tot_s, share, "deferrable <= 2% of sync",
              verdict(share is not None and share <= 0.02),
              note="a deferral's fixed cost (start, defer, resume) against waits 60x shorter than Azure's")
    still = [t for t, s in syn["slots"].items() if s["deferrals"]]

    svc = _services(standin, workdir, quick)
    why = _svc_missing(svc, "svc_one", "svc_one_sync")
    if why:
        _not_run(bench, "real services: waiting tasks, total", "deferrable <= 2% of sync", why)
    else:
        sd, ss = svc["svc_one"], svc["svc_one_sync"]
        swait = sorted(t for t, s in sd["slots"].items() if s["deferred"])
        for t in swait:
            a, b = sd["slots"][t]["slot"], ss["slots"].get(t, {}).get("slot")
            bench.add(f"real services: {t}", "slot s", a, b, ratio(a, b),
                      note=f"{sd['slots'][t]['executions']} executions")
        d = sum(sd["slots"][t]["slot"] for t in swait)
        y = sum(ss["slots"].get(t, {}).get("slot", 0.0) for t in swait)
        sh = ratio(d, y)
        bench.add("real services: waiting tasks, total", "slot s", d, y, sh, "deferrable <= 2% of sync",
                  verdict(sh is not None and sh <= 0.02),
                  note="each execution starts a task process and parses the DAG file; the waits are 60x shorter "
                       "than Azure's")
        pd = sum(sd["slots"][t]["parse"] for t in swait)
        py = sum(ss["slots"].get(t, {}).get("parse", 0.0) for t in swait)
        bench.add("real services: of which DAG file parse at task start", "s", pd, py, ratio(pd, py),
                  note="the task runner's dag_file_parse_ms, every execution")
        # the synchronous slot time of a wait = its fixed part (about what the deferrable run holds) + the wait;
        # at Azure's speed the wait is `scale` times longer and the fixed part is not
        proj = ratio(d, d + max(y - d, 0.0) * scale)
        bench.add(f"real services: projected at Azure's speed (waits x {scale:g})", "share", proj, None, None,
                  "(<= 2%: a projection)", INFO,
                  note="not a measurement: D / (D + (S - D) x time scale), D and S the two totals above")
        total_d = sum(v["slot"] for v in sd["slots"].values())
        total_s = sum(v["slot"] for v in ss["slots"].values())
        bench.add("real services: every task of the run", "slot s", total_d, total_s, ratio(total_d, total_s))
        bench.detail["services"] = {"deferrable": sd["slots"], "sync": ss["slots"]}
        retried = _retried(sd, ss)
        if retried:
            bench.notes.append(f"real services: retried task instances {', '.join(retried)}: {AIRFLOW_RACE}")
    bench.notes += [
        f"stand-in time scale {scale:g}x (Azure's durations / {scale:g}); at Azure's speed the waits are {scale:g}x "
        "longer while a deferral's fixed cost (start, DAG parse, defer, resume: what is left in the deferrable "
        "column) is not, so the share shrinks about that much",
        "airflow dags test runs each trigger in line in the same process: no slot is really freed there; the "
        "figure is the task time outside the in-line trigger, which a deployment runs in the triggerer",
        "synchronous run: every wait's deferrable=False" + (f"; still deferred: {', '.join(still)}" if still else
                                                             " (no task deferred)")
        + "; on the real services the same services restarted with AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=False",
        "real services: scheduler, triggerer, dag-processor, api-server; LocalExecutor with parallelism 8 (8 slots), "
        "SQLite; runs triggered through the REST API v2",
    ]
    bench.detail.update({"deferrable": dfr["slots"], "sync": syn["slots"]})
    return bench


def run_fleet(standin: StandIn, workdir: Path, quick: bool = False) -> Bench:
    pools = _fleet_pools(quick)
    bench = Bench(
        "fleet", "Fleet",
        measures=f"one pipeline with {pools} pools (mapped tasks) and 3 target regions vs the same with one pool, "
                 "under airflow dags test and under the real services",
        unit="seconds / requests per run / MiB",
        ratio_reads=f"{pools} pools / 1 pool",
        reference="the same pipeline with one pool and 3 regions",
    )
    scale = _scale(quick)
    one = _cached(standin, workdir, "one_pool", scale=scale)
    many = _cached(standin, workdir, f"fleet_{pools}", scale=scale, pools=pools)
    wall = ratio(many["dag_seconds"], one["dag_seconds"])
    bench.add("dags test: DAG wall (first task start to last task end)", "s", many["dag_seconds"], one["dag_seconds"],
              wall, "<= 1.5x", verdict(wall is not None and wall <= 1.5),
              note="dags test runs mapped task instances one after another, each trigger in line")
    bench.add("dags test: ARM / Batch requests per run", "requests", many["arm"] + many["batch"],
              one["arm"] + one["batch"], ratio(many["arm"] + many["batch"], one["arm"] + one["batch"]),
              note=f"ARM {many['arm']} vs {one['arm']}, Batch {many['batch']} vs {one['batch']}")

    svc = _services(standin, workdir, quick)
    label = f"svc_fleet_{pools}"
    why = _svc_missing(svc, "svc_one", label)
    if why:
        _not_run(bench, "real services: DAG wall", "<= 1.5x", why)
        _not_run(bench, "real services: triggerer peak memory", "-", why)
    else:
        s1, sn = svc["svc_one"], svc[label]
        w = ratio(sn["dag_seconds"], s1["dag_seconds"])
        bench.add("real services: DAG wall (first task start to last task end)", "s", sn["dag_seconds"],
                  s1["dag_seconds"], w, "<= 1.5x", verdict(w is not None and w <= 1.5),
                  note="LocalExecutor, 8 slots: mapped tasks run side by side")
        bench.add("real services: trigger to run success (REST API)", "s", sn["wall"], s1["wall"],
                  ratio(sn["wall"], s1["wall"]))
        mib = 1024 * 1024
        bench.add("real services: triggerer peak memory (RSS, with its trigger runner)", "MiB",
                  sn["triggerer_peak"] / mib, s1["triggerer_peak"] / mib, ratio(sn["triggerer_peak"], s1["triggerer_peak"]),
                  note=f"idle before the {pools}-pool run: {sn['triggerer_idle'] / mib:.0f} MiB")
        bench.add("real services: ARM requests per run", "requests", sn["arm"], s1["arm"], ratio(sn["arm"], s1["arm"]))
        bench.add("real services: Batch requests per run", "requests", sn["batch"], s1["batch"],
                  ratio(sn["batch"], s1["batch"]))
        share = sn["arm_reads"] / ARM_READS_PER_HOUR
        bench.add("real services: ARM reads per run", "reads", sn["arm_reads"], s1["arm_reads"],
                  ratio(sn["arm_reads"], s1["arm_reads"]),
                  note=f"a nightly run of {pools} pools spends {share:.1%} of 12,000 reads/hour/principal")
        retried = _retried(s1, sn)
        if retried:
            bench.notes.append(f"real services: {len(retried)} task instance(s) retried ({', '.join(retried[:6])}"
                               f"{', ...' if len(retried) > 6 else ''}): {AIRFLOW_RACE}")
        bench.detail["services"] = {k: {f: v.get(f) for f in ("wall", "dag_seconds", "arm", "batch", "arm_reads",
                                                                "triggerer_peak", "triggerer_idle")}
                                    for k, v in (("one", s1), ("many", sn))}
    bench.notes += [
        f"stand-in time scale {scale:g}x; every pool {one['nodes']} x Standard_D2s_v3 in the one seeded Batch account "
        "(the stand-in seeds one account; the 3 regions are the version's replication targets)",
        "ARM reads depend on the poll interval (1 s here, the stand-in being faster than Azure): at Azure's speed "
        "with a 30 s interval a run polls ~1/30 as often per wait second",
        "triggerer memory: VmRSS of the airflow triggerer process and every process under it (its trigger runner), "
        "summed, sampled every 0.5 s from /proc during the run",
    ]
    bench.detail.update({"one": {k: one[k] for k in ("wall", "dag_seconds", "arm", "batch", "arm_reads")},
                         "many": {k: many[k] for k in ("wall", "dag_seconds", "arm", "batch", "arm_reads")}})
    return bench


def run_overhead(standin: StandIn, workdir: Path, quick: bool = False) -> Bench:
    bench = Bench(
        "overhead", "Orchestration overhead",
        measures="DAG wall time / the stand-in's critical path (snapshots, image, version + replication, pool)",
        unit="seconds; ratio",
        ratio_reads="DAG wall / critical path: 1.0 would be no orchestration cost at all",
        reference="the stand-in's critical path (its simulated durations / time scale)",
    )
    run = _cached(standin, workdir, "one_pool", scale=_scale(quick))
    path = run["critical_path"]
    crit = sum(path.values())
    wall = run["dag_seconds"]
    bench.add("dags test: DAG wall / critical path", "s", wall, crit, ratio(wall, crit), "(1.15 applies to real services)")
    svc = _services(standin, workdir, quick)
    why = _svc_missing(svc, "svc_one")
    if why:
        _not_run(bench, "real services: DAG wall / critical path", "<= 1.15", why)
    else:
        s1 = svc["svc_one"]
        scrit = sum(s1["critical_path"].values())
        r = ratio(s1["dag_seconds"], scrit)
        bench.add("real services: DAG wall / critical path", "s", s1["dag_seconds"], scrit, r, "<= 1.15",
                  verdict(r is not None and r <= 1.15),
                  note="every task start is a process start + DAG parse; each deferral a triggerer pickup and a "
                       "scheduler round trip")
        tasks = len(s1["slots"])
        bench.add("real services: task executions in the run", "executions",
                  sum(v["executions"] for v in s1["slots"].values()), note=f"{tasks} task instances")
        bench.detail["services_critical_path"] = s1["critical_path"]
    for stage, secs in path.items():
        bench.add(f"critical path (dags test run): {stage}", "s", secs)
    bench.notes.append(f"stand-in time scale {run['scale']:g}x (the demo's is 60); dags test runs tasks one at a "
                       "time with triggers in line, and each task start costs ~0.1 s in one process; the critical "
                       "path counts those four stages only: the smoke test, approval, promotion and roll after the "
                       "pool are orchestration time here")
    bench.detail.update({"critical_path": path, "dag_seconds": wall})
    return bench
