"""`make demo` with a least-privilege principal: the seeded principal gets exactly the role assignments the pipeline
table (plugins/batch_images/rules/permissions.py) names for the demo's pipelines (include/pipelines/*.yaml), and the
stand-in enforces RBAC, so every request of the demo is checked against them. The stand-in's own default (the
seed's Owner + Azure Batch Account Contributor, enforcement off) is left for `make standin` and the tests."""
from __future__ import annotations

from typing import Any

from include.pipeline_runner import ROOT


def demo_assignments() -> list[tuple[str, str]]:
    """[(role, scope)]: the union of ``permissions.assignments`` over the demo's pipelines, minimal (a role already
    given at a containing scope is not repeated)."""
    from batch_images.operators.preflight_permissions import run_facts
    from batch_images.rules import permissions as perms
    from batch_images.rules.config import load_pipelines
    from batch_images.rules.run_options import RunOptions

    runs = [run_facts(cfg, RunOptions(), {}) for path in sorted((ROOT / "include" / "pipelines").glob("*.yaml"))
            for cfg in load_pipelines(path)]
    return perms.assignments(*runs)


def least_privilege(control: Any) -> list[tuple[str, str]]:
    """Give the seeded principal exactly :func:`demo_assignments` and turn enforcement on; prints and returns them."""
    roles = demo_assignments()
    control.set_roles(roles)
    control.rbac(True)
    print("RBAC enforced; the pipeline's principal holds only:")
    for role, scope in roles:
        print(f"  {role:<36} {scope}")
    return roles
