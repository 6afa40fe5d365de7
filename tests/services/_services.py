"""Helpers of the real-services tests (tests/services): the unscheduled demo pipeline, waiting for a DAG."""
from __future__ import annotations

import json
import time
from pathlib import Path

from include.services.stack import ApiClient

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "batch_image_ubuntu2204"
# The waits take seconds, not milliseconds, at this scale: every wait is still pending when it defers.
SERVICES_TIME_SCALE = 300.0


def demo_pipelines_dir(directory: Path) -> Path:
    """demo.yaml's pipelines, unscheduled, as a BATCH_IMAGES_PIPELINES_DIR."""
    from batch_images.rules.config import load_pipelines

    cfgs = [p.to_dict() for p in load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")]
    for cfg in cfgs:
        cfg["schedule"] = None
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "demo.yaml").write_text(json.dumps({"pipelines": cfgs}, indent=2, default=str))
    return directory


def wait_for_dag(api: ApiClient, dag_id: str, timeout: float = 180) -> dict:
    """The DAG as the API shows it, once the dag-processor has parsed it (import errors fail at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = api.get("/api/v2/importErrors")
        assert not errors["import_errors"], errors["import_errors"]
        dags = api.get("/api/v2/dags", dag_id_pattern=dag_id)["dags"]
        if any(d["dag_id"] == dag_id for d in dags):
            return api.get(f"/api/v2/dags/{dag_id}")
        time.sleep(2)
    raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f} s")
