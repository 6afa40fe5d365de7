"""Roll-only runs as pure rules: the params (rules/run_options.py), each pool's history and rollback target
(rules/roll.py), the targets of rollback / roll_to_existing / revoke (rules/roll_targets.py) and what retention keeps
and deletes for them (rules/retention.py). No stand-in, no Airflow."""

from __future__ import annotations

from datetime import date

import pytest

from batch_images.rules import naming, roll
from batch_images.rules.errors import InvalidInput
from batch_images.rules.retention import Reference, select
from batch_images.rules.roll_targets import RolledPool, choose_targets, revoked_target_problem, version_infos
from batch_images.rules.run_options import parse_run_options

DEF = ("/subscriptions/2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e/resourceGroups/rg/providers/Microsoft.Compute/galleries/"
       "gal/images/ubuntu")
OURS = {naming.TAG_MANAGED_BY: naming.MANAGED_BY}


def version(name: str, regions=("westeurope",), revoked: str | None = None, state: str = "Succeeded",
            excluded: bool = False) -> dict:
    tags = {**OURS, **({naming.TAG_REVOKED: revoked} if revoked else {})}
    return {"id": f"{DEF}/versions/{name}", "name": name, "tags": tags,
            "properties": {"provisioningState": state, "publishingProfile": {
                "excludeFromLatest": excluded or bool(revoked), "publishedDate": "2026-11-01T00:00:00Z",
                "targetRegions": [{"name": r} for r in regions]}}}


def serving(version_name: str, history: str = "", pool_id: str = "alpha-x") -> roll.PhysicalPool:
    md = {naming.TAG_LOGICAL_POOL: "alpha", naming.TAG_IMAGE_VERSION: version_name, naming.TAG_ROLE: "serving"}
    if history:
        md[naming.TAG_PREVIOUS_VERSIONS] = history
    return roll.PhysicalPool.from_listing({"id": pool_id, "state": "active", "metadata": md})


def opts(**raw):
    return parse_run_options(raw, regions=["westeurope", "northeurope"], pools=["alpha", "beta"])


# -- params ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, field, words", [
    ({"mode": "undo"}, "params.mode", "not a run mode"),
    ({"mode": "roll_to_existing"}, "params.version", "needs the existing version to roll to"),
    ({"mode": "revoke"}, "params.version", "needs the existing version to revoke"),
    ({"mode": "rollback", "version": "2026.1125.0"}, "params.version", "not to a version you name"),
    ({"mode": "rollback", "rebuild": 2}, "params.rebuild", "builds nothing"),
    ({"mode": "rollback", "canary_only": True}, "params.canary_only", "a canary belongs to a build"),
])
def test_roll_only_params_are_refused_naming_the_field(raw, field, words):
    with pytest.raises(InvalidInput) as err:
        opts(**raw)
    assert err.value.field == field and words in str(err.value)


def test_roll_only_modes_imply_allow_downgrade_and_report_their_kind():
    o = opts(mode="roll_to_existing", version="2026.1125.0")
    assert o.roll_only and o.downgrade_allowed and not o.allow_downgrade and o.run_kind == "roll_to_existing"
    assert not opts().roll_only and opts().run_kind == "full" and opts(mode="").mode == "build"


# -- history -----------------------------------------------------------------------------------------------------


def test_a_roll_pushes_the_serving_version_and_a_rollback_pops_back_to_its_target():
    s = serving("3.0.0", "1.0.0,2.0.0")
    assert roll.next_history(s, "4.0.0") == ["1.0.0", "2.0.0", "3.0.0"]
    assert roll.next_history(s, "2.0.0", rollback=True) == ["1.0.0"]  # twice back goes to 1.0.0, not to 3.0.0
    assert roll.next_history(s, "1.0.0", rollback=True) == []
    assert roll.next_history(s, "2.0.0") == ["1.0.0", "3.0.0"]  # roll_to_existing: "previous" is 3.0.0
    assert roll.next_history(serving("2.0.0", "1.0.0"), "1.0.0", revoked=["2.0.0"]) == []  # a revoke's move
    assert roll.next_history(None, "1.0.0") == []
    assert roll.next_history(serving("3.0.0", "1.0.0"), "4.0.0", revoked=["3.0.0"]) == ["1.0.0"]


def test_the_history_is_bounded():
    s = serving("9.0.0", ",".join(f"{i}.0.0" for i in range(1, 9)))
    out = roll.next_history(s, "10.0.0")
    assert len(out) == roll.MAX_HISTORY and out[-1] == "9.0.0" and out[0] == "2.0.0"
    assert roll.parse_history(roll.history_value(out)) == out


def test_rollback_target_skips_versions_that_are_gone_or_revoked():
    assert roll.rollback_target(["1.0.0", "2.0.0", "3.0.0"], {"1.0.0", "2.0.0"}) == ("2.0.0", ["1.0.0"])
    assert roll.rollback_target(["1.0.0", "2.0.0"], {"1.0.0"}) == ("1.0.0", [])
    assert roll.rollback_target(["1.0.0"], set()) == (None, [])


def test_decide_moves_a_pool_off_a_revoked_version_even_backwards():
    assert roll.decide("1.0.0", serving("2.0.0")) == roll.SKIP_DOWNGRADE
    assert roll.decide("1.0.0", serving("2.0.0"), revoked=["2.0.0"]) == roll.ROLL


# -- targets -----------------------------------------------------------------------------------------------------

VERSIONS = version_infos([version("2026.1125.0"), version("2026.1126.0", revoked="2026-12-01T00:00:00Z by d/r"),
                          version("2026.1127.0", regions=("westeurope", "northeurope"))])


def pools(*entries):
    return [RolledPool(i, name, region, pool) for i, (name, region, pool) in enumerate(entries)]


def test_rollback_goes_to_the_newest_previous_version_that_is_usable():
    t = choose_targets(opts(mode="rollback"), VERSIONS,
                       pools(("alpha", "westeurope", serving("2026.1127.0", "2026.1125.0,2026.1126.0"))), "ubuntu")
    assert t.problems == [] and t.version == {0: "2026.1125.0"}  # 2026.1126.0 is revoked
    assert t.newest() == "2026.1125.0"


def test_rollback_without_a_previous_version_names_what_remains():
    t = choose_targets(opts(mode="rollback"), VERSIONS, pools(("alpha", "westeurope", serving("2026.1127.0")),
                                                              ("beta", "westeurope", None)), "ubuntu")
    assert [p.field for p in t.problems] == ["params.mode", "params.pools"]
    assert "previous-versions: none recorded" in t.problems[0].reason
    assert "2026.1125.0" in t.problems[0].fix and "2026.1126.0" not in t.problems[0].fix
    assert "nothing to roll back" in t.problems[1].reason


@pytest.mark.parametrize("name, words", [("2026.1124.0", "no such image version"), ("2026.1126.0", "revoked")])
def test_roll_to_existing_refuses_a_missing_or_revoked_version(name, words):
    t = choose_targets(opts(mode="roll_to_existing", version=name), VERSIONS,
                       pools(("alpha", "westeurope", None)), "ubuntu")
    assert t.version == {} and len(t.problems) == 1 and words in t.problems[0].reason
    assert t.problems[0].field == "params.version" and "2026.1125.0" in t.problems[0].fix


def test_roll_to_existing_adds_a_missing_region_once():
    t = choose_targets(opts(mode="roll_to_existing", version="2026.1125.0"), VERSIONS,
                       pools(("alpha", "northeurope", serving("2026.1127.0")), ("beta", "North Europe", None)),
                       "ubuntu")
    assert t.problems == [] and t.version == {0: "2026.1125.0", 1: "2026.1125.0"}
    assert t.add_regions == {"2026.1125.0": ["northeurope"]}


def test_revoke_moves_only_the_pools_on_that_version_to_the_newest_usable_one():
    t = choose_targets(opts(mode="revoke", version="2026.1127.0"), VERSIONS,
                       pools(("alpha", "westeurope", serving("2026.1127.0")),
                             ("beta", "westeurope", serving("2026.1125.0", pool_id="beta-x"))), "ubuntu")
    assert t.problems == [] and t.version == {0: "2026.1125.0"}
    assert "not on the revoked version 2026.1127.0" in t.not_rolled["beta"]


def test_a_build_of_a_revoked_version_is_refused():
    err = revoked_target_problem("2026.1126.0", VERSIONS, "params.rebuild")
    assert err is not None and err.field == "params.rebuild" and "raise rebuild" in err.fix
    assert revoked_target_problem("2026.1125.0", VERSIONS, "params.rebuild") is None


# -- retention ---------------------------------------------------------------------------------------------------


def test_retention_keeps_the_rollback_target_and_deletes_an_unused_revoked_version_even_the_newest():
    versions = [version(f"1.0.{i}") for i in range(5)] + [version("1.0.5", revoked="x")]
    ids = {v["name"]: v["id"] for v in versions}
    plan = select(versions, keep_versions=1, references=[Reference(ids["1.0.4"], "pool p (a)")],
                  today=date(2026, 12, 1), rollback_targets=[Reference(ids["1.0.1"], "logical pool alpha")])
    assert sorted(v.rsplit("/", 1)[-1] for v in plan.delete) == ["1.0.0", "1.0.2", "1.0.3", "1.0.5"]
    assert plan.keep[ids["1.0.1"]] == "the rollback target of logical pool alpha"


def test_a_revoked_version_still_in_use_is_kept():
    versions = [version("1.0.0"), version("1.0.1", revoked="x"), version("1.0.2")]
    plan = select(versions, keep_versions=1, references=[Reference(versions[1]["id"], "pool p (a)")],
                  today=date(2026, 12, 1))
    assert plan.delete == [versions[0]["id"]] and plan.keep[versions[1]["id"]].startswith("used by pool p")
