"""Benchmark 6, DAG parse time: each file of dags/ executed in a fresh process, as a DAG processor would.

Each parse is a new Python process that first imports ``airflow.sdk`` (a DAG processor has it loaded
already), then times ``runpy.run_path(file)`` and lists the modules the file pulled in. Min and median over
the repeats; the target is <= 0.2 s per file and no ``azure.*`` module (the SDK loads only when a task runs).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.common import ROOT, Bench, median, verdict

KEY = "parse"
TARGET_SECONDS = 0.2

_CHILD = r"""
import json, runpy, sys, time
import airflow.sdk  # loaded in any DAG processor before it reads a file
before = set(sys.modules)
t0 = time.perf_counter()
ns = runpy.run_path(sys.argv[1], run_name="bench_parse")
seconds = time.perf_counter() - t0
new = sorted(set(sys.modules) - before)
from airflow.sdk import DAG
dags = [v.dag_id for v in ns.values() if isinstance(v, DAG)]
print(json.dumps({"seconds": seconds, "modules": new, "dags": dags}))
"""


def parse_once(path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"parsing {path} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(repeats: int = 10) -> Bench:
    bench = Bench(
        KEY, "DAG parse time",
        measures=f"executing each dags/ file in a fresh process (min / median of {repeats}), and what it imports",
        unit="seconds per file; modules imported",
        ratio_reads="median / target: under 1 means inside the target",
        reference="the target, 0.2 s per file",
    )
    detail = {}
    for path in sorted((ROOT / "dags").glob("*.py")):
        runs = [parse_once(path) for _ in range(repeats)]
        times = [r["seconds"] for r in runs]
        modules = runs[-1]["modules"]
        azure = [m for m in modules if m == "azure" or m.startswith("azure.")]
        med = median(times)
        bench.add(f"{path.name}: parse, median", "s", med, TARGET_SECONDS, med / TARGET_SECONDS,
                  f"<= {TARGET_SECONDS} s", verdict(med <= TARGET_SECONDS))
        bench.add(f"{path.name}: parse, min", "s", min(times), None, None)
        bench.add(f"{path.name}: azure.* modules imported", "modules", len(azure), None, None, "0",
                  verdict(not azure), note=", ".join(azure[:5]))
        bench.add(f"{path.name}: modules imported (beyond airflow.sdk)", "modules", len(modules))
        bench.add(f"{path.name}: DAGs built", "DAGs", len(runs[-1]["dags"]))
        top = sorted({m.split(".")[0] for m in modules})
        detail[path.name] = {"seconds": times, "modules": len(modules), "top_level_packages": top, "azure": azure,
                             "dags": runs[-1]["dags"]}
    bench.detail = detail
    return bench
