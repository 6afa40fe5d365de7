"""`make bench`: run the benchmarks against the local stand-in, print one table, write JSON/Markdown/PNG.

    python -m benchmarks.run [--quick] [--services [--azure-speed]] [--only poll_cost,parse,...]
                             [--out benchmarks/results] [--no-write]

Outputs ``<out>/<date>-<machine>.json``, ``.md`` and ``.png`` (``--no-write``: print only). ``--quick`` runs
the smallest size of each benchmark (the smoke test's mode); its figures are not the published ones.
``--services`` adds the real-services rows of the worker-slot, fleet and overhead benchmarks (benchmarks/services.py:
scheduler, triggerer, dag-processor and api-server started twice, three runs; 10-25 minutes on 2 cores).
``--azure-speed`` (implies ``--services``) adds the one-pool run, deferrable and synchronous, at stand-in time
scale 1 (Azure's durations as the stand-in models them) for the worker-slot and overhead targets: two runs of
~32 minutes side by side, each with its own stand-in and its own Airflow stack (48 minutes in all on 2 cores).
Benchmarks run in the issue's priority order; one that fails is reported as failed and the rest go on.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "plugins"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

# The Makefile exports these; a bare `python -m benchmarks.run` gets the same.
for _k, _v in {"AIRFLOW_HOME": str(ROOT / ".airflow"),
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{ROOT / '.airflow' / 'airflow.db'}",
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
               "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins")}.items():
    os.environ.setdefault(_k, _v)
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, [str(ROOT), str(ROOT / "plugins"),
                                                                       os.environ.get("PYTHONPATH")])))

from benchmarks import report  # noqa: E402
from benchmarks.common import RESULTS_DIR, Bench, StandIn, machine, write_json  # noqa: E402

ORDER = ("poll_cost", "standin_scale", "parse", "detection", "worker_slots", "fleet", "overhead")


def _benchmarks(quick: bool) -> dict:
    """key -> callable(standin, workdir) -> Bench | list[Bench], in the issue's priority order."""
    from benchmarks import parse, poll_cost, standin_scale

    table = {
        "poll_cost": lambda s, w: poll_cost.run(s, sizes=(100,) if quick else (100, 1000, 10_000),
                                                polls=2 if quick else 5, provider_polls=1 if quick else 3),
        "standin_scale": lambda s, w: standin_scale.run(s, nodes=100 if quick else 10_000),
        "parse": lambda s, w: parse.run(repeats=2 if quick else 10),
    }
    try:
        from benchmarks import detection

        table["detection"] = lambda s, w: detection.run(s, trials=1 if quick else 3)
    except ImportError:
        pass
    try:
        from benchmarks import pipelines

        table["worker_slots"] = lambda s, w: pipelines.run_slots(s, w, quick=quick)
        table["fleet"] = lambda s, w: pipelines.run_fleet(s, w, quick=quick)
        table["overhead"] = lambda s, w: pipelines.run_overhead(s, w, quick=quick)
    except ImportError:
        pass
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smallest size of each benchmark (smoke test)")
    ap.add_argument("--services", action="store_true",
                    help="also run the pipelines under the real Airflow services (slow: 10-25 minutes)")
    ap.add_argument("--azure-speed", action="store_true",
                    help="also run the one-pool pipeline under the real services at stand-in time scale 1 (Azure's "
                         "durations), deferrable and synchronous side by side (implies --services; ~32 minutes more)")
    # the Azure-speed runs' time scale: 1 unless a test of the plumbing asks for a fast one
    ap.add_argument("--azure-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--only", default="", help="comma-separated benchmark keys: " + ", ".join(ORDER))
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("azure", "airflow.task.hooks", "batch_images"):
        logging.getLogger(name).setLevel(logging.WARNING)

    table = _benchmarks(args.quick)
    if args.services or args.azure_speed:
        from benchmarks import pipelines

        pipelines.SERVICES.update(enabled=True, azure_speed=args.azure_speed, azure_scale=args.azure_scale)
    wanted = [k for k in (args.only.split(",") if args.only else ORDER) if k]
    unknown = [k for k in wanted if k not in ORDER]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; known: {', '.join(ORDER)}")
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "started": datetime.now(timezone.utc).isoformat(),
            "machine": machine(), "quick": args.quick, "services": args.services or args.azure_speed,
            "azure_speed": args.azure_speed, "azure_scale": args.azure_scale if args.azure_speed else None}
    benches: list[Bench] = []
    start = time.monotonic()
    with StandIn() as standin:
        for key in wanted:
            if key not in table:
                continue
            print(f"[bench] {key} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                got = table[key](standin, standin.workdir)
            except Exception as err:  # one broken benchmark must not hide the others' figures
                traceback.print_exc()
                got = Bench(key, key, "", "", "", "", error=f"{type(err).__name__}: {err}")
            for b in got if isinstance(got, list) else [got]:
                b.seconds = round(time.monotonic() - t0, 1)
                benches.append(b)
            meta.setdefault("load_1min", {})[key] = round(os.getloadavg()[0], 2)
            print(f"[bench] {key} done in {time.monotonic() - t0:.0f} s (1-min load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr, flush=True)
    meta["seconds"] = round(time.monotonic() - start, 1)

    print(report.text_table(benches))
    if not args.no_write:
        stem = f"{meta['date']}-{meta['machine']['short']}" + ("-quick" if args.quick else "")
        png = report.chart(benches, args.out / f"{stem}.png", f"make bench {meta['date']} on {meta['machine']['short']}")
        meta["chart"] = png.name if png else None
        runs = {}
        if "benchmarks.pipelines" in sys.modules:  # the pipeline runs behind the rows (task slots, requests, ...)
            runs = {k: v for k, v in sys.modules["benchmarks.pipelines"]._RUNS.items()}
        write_json(args.out / f"{stem}.json", {"meta": meta, "benchmarks": [b.as_dict() for b in benches],
                                               "runs": runs})
        (args.out / f"{stem}.md").write_text(report.markdown(benches, meta))
        print(f"\nwrote {args.out / stem}.{{json,md" + (",png}" if png else "}"))
    return 1 if any(b.error for b in benches) else 0


if __name__ == "__main__":
    sys.exit(main())
