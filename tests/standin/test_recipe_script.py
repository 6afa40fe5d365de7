"""The SDK-only walkthrough script runs the whole recipe against the stand-in from endpoints.json alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "include" / "azure_standin" / "examples" / "recipe_with_sdks.py"


def test_sdk_only_script_reaches_a_steady_pool_on_the_new_version(standin):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(standin.state_dir / "endpoints.json")],
                          capture_output=True, text=True, timeout=180, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is steady on" in proc.stdout
    batch = standin.batch()
    pool = batch.get_pool("pool-sdk")
    assert pool.virtual_machine_configuration.image_reference.virtual_machine_image_id.endswith("/versions/1.0.0")
    counts = next(c for c in batch.list_pool_node_counts() if c.pool_id == "pool-sdk")
    assert counts.dedicated.idle == 2
