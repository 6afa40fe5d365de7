# Astro Runtime 3.3: Airflow 3.3 on Python 3.11. `astro dev start` builds this file; the runtime
# image's ONBUILD steps install packages.txt (none needed here) and requirements.txt (exact pins),
# then copy dags/, plugins/, include/ and airflow_settings.yaml into /usr/local/airflow.
FROM astrocrpublic.azurecr.io/runtime:3.3-1
# Waits defer to the triggerer (sensors read [operators] default_deferrable, whose stock default is False).
ENV AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=True
# A deferring task's exit reaches the scheduler within a second, before its trigger can fire: with the 5 s default,
# Airflow 3.3.2 reads the late "success" as a kill and retries the task (apache/airflow#72716, #67287; measured in
# benchmarks/results/2026-12-04-retry-free*.md, docs/getting-started.md).
ENV AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1

# Without the Astro CLI, build on the official image instead (same result):
#   FROM apache/airflow:3.3.2-python3.11
#   COPY requirements.txt /requirements.txt
#   RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt
#   COPY --chown=airflow:root dags/ /opt/airflow/dags/
#   COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
#   COPY --chown=airflow:root include/ /opt/airflow/include/
#   ENV PYTHONPATH=/opt/airflow
