"""The opening of the e2e module fixtures: the session's stand-in reset, a pipeline with a unique dag_id written to
its own pipelines folder, and the Airflow connections' environment for `airflow dags test` children."""
from __future__ import annotations

import uuid
from typing import Callable

from include.pipeline_fixtures import short_field_pool
from include.pipeline_runner import connection_env, write_pipeline


def fresh_pipeline(standin_session, tmp_path_factory, prefix: str, make_cfg: Callable[[dict, str], dict]):
    """-> (stand-in, its endpoints, a temp dir with ``pipelines/``, dag_id ``<prefix>_<8 hex>``, the config, env)."""
    s = standin_session
    if s.proc is None or s.proc.poll() is not None:
        s.start()
    s.reset()
    ep = s.endpoints
    tmp = tmp_path_factory.mktemp(prefix)
    dag_id = f"{prefix}_{uuid.uuid4().hex[:8]}"
    cfg = make_cfg(ep, dag_id)
    write_pipeline(tmp / "pipelines", cfg)
    return s, ep, tmp, dag_id, cfg, connection_env(ep)


def demo_pipeline(ep: dict, dag_id: str) -> tuple[dict, dict]:
    """include/pipelines/demo.yaml's pipeline on this stand-in (poll every second, West + North Europe) and its first
    pool pointed at the seeded account, written with the short fields (include/pipeline_fixtures.py) at 2 dedicated
    nodes and no approval: ``(config, that pool)``; the caller sets ``config["pools"]``."""
    from batch_images.rules.config import load_pipelines
    from include.pipeline_runner import ROOT

    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=dag_id, poll_interval_seconds=1, source_vm_id=demo["source_vm_id"],
               target_regions=[{"name": "westeurope"}, {"name": "northeurope"}])
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    base = short_field_pool(cfg["pools"][0], batch_account_id=demo["batch_account_id"],
                            batch_account_location=demo["location"], target_dedicated_nodes=2, require_approval=False)
    return cfg, base


def long_tasks_when_pools_exist(standin, batch, new_pool_ids: list[str], job_ids: list[str], real_seconds: float,
                                added: dict) -> Callable[[str], bool]:
    """A ``kill_when`` hook for ``run_dag_test`` that never kills: once every pool of ``new_pool_ids`` exists (the
    night's canaries), it adds a task ``long`` (``sleep`` for ``real_seconds`` at the stand-in's time scale) to each
    job of ``job_ids``, once, and records the time in ``added["at"]``. Looks at most once a second."""
    import time

    from azure.batch import models as bm

    checked = [0.0]

    def hook(_log_text: str) -> bool:
        if added or time.time() - checked[0] < 1.0:
            return False
        checked[0] = time.time()
        if set(new_pool_ids) <= {p.id for p in batch.list_pools()}:
            scale = standin.control.call("GET", "/clock").get("scale", 3000)
            for job_id in job_ids:
                batch.create_task(job_id, bm.BatchTaskCreateOptions(
                    id="long", command_line=f"/bin/bash -c 'sleep {int(real_seconds * scale)}'"))
            added["at"] = time.time()
        return False

    return hook


def meta(pool) -> dict:
    """A Batch pool's (SDK model) metadata as a dict."""
    return {m.name: m.value for m in pool.metadata or []}
