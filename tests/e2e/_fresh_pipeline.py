"""The opening of the e2e module fixtures: the session's stand-in reset, a pipeline with a unique dag_id written to
its own pipelines folder, and the Airflow connections' environment for `airflow dags test` children."""
from __future__ import annotations

import uuid
from typing import Callable

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
