"""Pure rules of the project: ids, naming, sizing, validation and the pipeline config.

No Airflow and no Azure SDK import in this package (stdlib + PyYAML only): DAG files import it at
parse time, and its tests run in milliseconds. tests/rules/test_rules_purity.py enforces that.
"""

from .errors import InvalidInput

__all__ = ["InvalidInput"]
