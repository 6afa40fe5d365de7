"""The real Airflow services over this project (scheduler, triggerer, dag-processor, api-server, Celery
workers) with their backing servers (PostgreSQL, Redis): `make airflow` and tests/services."""
