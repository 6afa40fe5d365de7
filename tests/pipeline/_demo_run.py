"""A real `airflow dags test` run of the demo pipeline against the session's stand-in (reset first), with a unique
dag_id written to its own pipelines folder: the runs the portal-link and run-summary tests read."""
from __future__ import annotations

from batch_images.rules.config import load_pipelines
from include.pipeline_runner import ROOT, connection_env, run_dag_test, write_pipeline

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"


def demo_pipeline(ep: dict, dag_id: str) -> dict:
    """The demo pipeline on this stand-in's seeded VM, gallery and Batch account (two regions, its template pool:
    4 canary nodes, then its autoscale formula; no smoke test)."""
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=dag_id, poll_interval_seconds=1, source_vm_id=demo["source_vm_id"],
               target_regions=[{"name": "westeurope"}, {"name": "northeurope"}])
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    cfg["pools"] = [{**cfg["pools"][0], "batch_account_id": demo["batch_account_id"],
                     "batch_account_location": demo["location"], "smoke_test": None, "require_approval": False}]
    return cfg


def run_demo(standin_session, tmp, dag_id: str, logical_date: str = LOGICAL_DATE, mutate=None):
    """Run the demo pipeline (``mutate(cfg)`` first, if given) as ``dag_id`` with its files under ``tmp``; returns
    run_dag_test's RunResult (exit code, state, task states, XComs, log)."""
    s = standin_session
    if s.proc is None or s.proc.poll() is not None:
        s.start()
    s.reset()
    cfg = demo_pipeline(s.endpoints, dag_id)
    if mutate:
        mutate(cfg)
    write_pipeline(tmp / "pipelines", cfg)
    return run_dag_test(dag_id, logical_date, tmp / "run.log", env=connection_env(s.endpoints),
                        pipelines_dir=tmp / "pipelines")
