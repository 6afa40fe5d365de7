"""`python tests/reliability/resume_dag_run.py DAG_ID LOGICAL_DATE`: go on with an existing DAG run.

`airflow dags test` always starts over: it clears every task instance of the logical date and deletes
the DagRun, so a second `dags test` is a new run with a new run_id - not what a retry is. After a
worker is killed, Airflow's scheduler marks the task instance up_for_retry and the *same* run goes on
(same run_id, try_number + 1, upstream XComs kept). This wrapper gives `airflow dags test` exactly that:
it reuses the DagRun of the logical date (instead of deleting it) and does not clear task instances, so
the test loop picks up whatever the caller left schedulable (see pipeline_harness.mark_killed_for_retry).
Everything else is the unmodified `airflow dags test` (in-line triggers, the same task runner).
"""
from __future__ import annotations

import sys
from unittest import mock


def main(argv: list[str]) -> int:
    dag_id, logical_date = argv[0], argv[1]

    import airflow.models.dagrun as dagrun_module
    from airflow.serialization.definitions.dag import SerializedDAG
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    create = dagrun_module.get_or_create_dagrun

    def reuse_dagrun(*, dag, logical_date, session, **kwargs):
        DagRun = dagrun_module.DagRun
        existing = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                       DagRun.logical_date == logical_date))
        if existing is None:
            return create(dag=dag, logical_date=logical_date, session=session, **kwargs)
        existing.state = DagRunState.RUNNING
        existing.end_date = None
        session.commit()
        existing.dag = dag
        return existing

    def keep_task_instances(*args, **kwargs):
        return 0

    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "dags", "test", dag_id, logical_date]
    with mock.patch.object(dagrun_module, "get_or_create_dagrun", reuse_dagrun), \
            mock.patch.object(SerializedDAG, "clear_dags", keep_task_instances):
        result = airflow_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
