"""rules/ must stay importable without Airflow or the Azure SDK (stdlib, PyYAML and pydantic only).

pydantic (v2, installed with Airflow) validates the pipeline config (rules/config.py); annotated_types is
the constraint vocabulary pydantic uses (Ge, Le, MinLen).
"""

import ast
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "plugins" / "batch_images" / "rules"
ALLOWED_THIRD_PARTY = {"yaml", "pydantic", "annotated_types", "jsonschema"}  # jsonschema: pool templates (Airflow depends on it)


def test_rules_import_only_stdlib_yaml_and_pydantic():
    offenders = []
    files = sorted(RULES.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY:
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert not offenders, offenders


def test_importing_rules_loads_no_airflow_or_azure_module():
    code = (
        "import sys\n"
        "import batch_images.rules.config, batch_images.rules.ids, batch_images.rules.naming, "
        "batch_images.rules.sizing, batch_images.rules.errors\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'azure'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=RULES.parents[1], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
