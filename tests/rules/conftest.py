"""Make ``batch_images`` importable without Airflow: put plugins/ (and the project root) on sys.path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "plugins", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))
