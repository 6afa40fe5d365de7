"""Run a pipeline DAG with `airflow dags test` in a child process and read back what it did.

Used by `make demo` and by the end-to-end and fault tests. A child process is what makes a worker
death testable: kill it mid-task, then run the same logical date again, as a retry would.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunResult:
    exit_code: int | None               # None: killed by the caller
    wall_seconds: float
    log_path: Path
    run: dict = field(default_factory=dict)       # run_id, state, seconds
    tasks: list[dict] = field(default_factory=list)   # task, state, try, seconds
    xcoms: dict = field(default_factory=dict)     # "task[:map]:key" -> value

    @property
    def state(self) -> str | None:
        return self.run.get("state")

    def task_state(self, task: str) -> str | None:
        return next((t["state"] for t in self.tasks if t["task"] == task), None)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def run_dag_test(dag_id: str, logical_date: str, log_path: Path, env: dict[str, str] | None = None,
                 pipelines_dir: Path | None = None, kill_when=None, timeout: float = 900,
                 conf: dict | None = None) -> RunResult:
    """`airflow dags test DAG_ID LOGICAL_DATE [--conf JSON]`; `kill_when(log_text) -> bool` SIGKILLs it when true.
    ``conf``: the run's params (what the trigger form sends), e.g. ``{"allow_downgrade": true}``."""
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), child_env.get("PYTHONPATH")]))
    if pipelines_dir is not None:
        child_env["BATCH_IMAGES_PIPELINES_DIR"] = str(pipelines_dir)
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        argv = [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date]
        if conf:
            argv += ["--conf", json.dumps(conf)]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                start_new_session=True)
        rc: int | None
        while True:
            try:
                rc = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if kill_when is not None and kill_when(log_path.read_text(errors="replace")):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
                break
            if time.monotonic() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise TimeoutError(f"`airflow dags test {dag_id}` ran over {timeout}s; log: {log_path}")
    result = RunResult(rc, time.monotonic() - start, log_path)
    result.run, result.tasks, result.xcoms = read_run(dag_id, logical_date)
    return result


def read_run(dag_id: str, logical_date: str) -> tuple[dict, list[dict], dict]:
    """The run, its task instances (with durations) and XComs, from the Airflow metadata DB."""
    from airflow.models import DagRun, TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    wanted = datetime.fromisoformat(logical_date.replace("Z", "+00:00"))
    with create_session() as session:
        run = (session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.logical_date == wanted)
               .order_by(DagRun.id.desc()).first())
        if run is None:
            return {}, [], {}
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id).all()
        far = datetime.max.replace(tzinfo=timezone.utc)
        tasks = []
        for ti in sorted(tis, key=lambda t: (t.start_date or far, t.map_index)):
            seconds = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
            tasks.append({"task": ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]",
                          "state": str(ti.state), "try": ti.try_number,
                          "seconds": None if seconds is None else round(seconds, 1)})
        xcoms = {}
        for x in session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id):
            task = x.task_id if x.map_index < 0 else f"{x.task_id}[{x.map_index}]"
            xcoms[f"{task}:{x.key}"] = XComModel.deserialize_value(x)
        seconds = (run.end_date - run.start_date).total_seconds() if run.end_date and run.start_date else None
        info = {"run_id": run.run_id, "state": str(run.state), "seconds": None if seconds is None else round(seconds, 1)}
    return info, tasks, xcoms


def connection_env(endpoints: dict, batch_account: str | None = None) -> dict[str, str]:
    """AIRFLOW_CONN_AZURE_DEFAULT / _AZURE_BATCH_DEFAULT for a running stand-in (same shape as airflow_settings.yaml)."""
    account = batch_account or endpoints["demo"]["batch_account"]
    arm = {"conn_type": "azure", "login": endpoints["client_id"], "password": endpoints["client_secret"],
           "extra": {"tenantId": endpoints["tenant_id"], "subscriptionId": endpoints["subscription_id"],
                     "authority": endpoints["authority"], "arm_endpoint": endpoints["arm"],
                     "ca_bundle": endpoints["ca_bundle"]}}
    batch = {"conn_type": "azure_batch",
             "extra": {"account_url": endpoints["batch_accounts"][account]["endpoint"],
                       "credential_conn_id": "azure_default", "ca_bundle": endpoints["ca_bundle"]}}
    return {"AIRFLOW_CONN_AZURE_DEFAULT": json.dumps(arm), "AIRFLOW_CONN_AZURE_BATCH_DEFAULT": json.dumps(batch)}


def write_pipeline(directory: Path, pipeline: dict) -> Path:
    """A one-pipeline YAML file for BATCH_IMAGES_PIPELINES_DIR (JSON is valid YAML)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pipeline['dag_id']}.yaml"
    path.write_text(json.dumps({"pipelines": [pipeline]}, indent=2, default=str))
    return path
