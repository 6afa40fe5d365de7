"""The options of one run: what the trigger form (the DAG's Params) or ``--conf`` asks for, validated.

The form validates each field with its JSON schema (:func:`param_schemas` gives the schemas, so the form and this
module share one rule; for ``version`` the form checks the shape only, see VERSION_PATTERN), but the REST API, ``airflow dags trigger --conf`` and ``airflow dags test --conf`` can pass
anything a schema does not express (two fields that exclude each other, regions that must stay selected), and Params
validation is Airflow's, not ours. So preflight validates the run's params again (:func:`parse_run_options`, then
:func:`check_coverage` once it knows the Batch accounts' regions) and fails at once, before any write, with an
:class:`~batch_images.rules.errors.InvalidInput` naming ``params.<field>``, the value, the reason and the fix.

Fields (``RunOptions``):

* ``mode`` - ``build`` (the default: build a version and roll to it), or a roll-only run that builds nothing
  (docs/operations.md, "Roll back"): ``rollback`` (each selected logical pool back to the version it served before its current
  one, from its serving pool's ``previous-versions`` metadata), ``roll_to_existing`` (every selected logical pool to
  the existing ``version``, older or newer), ``revoke`` (mark ``version`` revoked and move the pools it serves to the
  newest version that is not revoked). Roll-only modes imply ``allow_downgrade``; ``rollback`` takes no ``version``,
  the other two need one; none of them takes ``rebuild`` or ``canary_only``.
* ``rebuild`` - the ``N`` of ``YYYY.MMDD.N`` (0..2147483647).
* ``version`` - an explicit ``Major.Minor.Patch`` instead of the date-derived name; each part 0..2147483647 without
  leading zeros (Azure stores each part as a 32-bit integer: the gallery image version name rule of the
  GalleryImageVersion REST API, azure-rest-api-specs ``galleryImageVersionName``; :func:`naming.validate_version_name`).
  Exclusive with ``rebuild`` > 0: ``rebuild`` numbers the date-derived name, an explicit version has no ``N`` to
  number, so both at once is ambiguous and refused (raise the patch part instead).
* ``target_regions`` - a subset of the configured target regions (empty or null: all). The gallery's own region and
  the Batch account region of every pool the run rolls must stay in it: Azure requires the source region among a
  version's targets, and Batch allocates a pool's nodes from the replica in its account's region.
* ``pools`` - the logical pools (``pool_id_prefix``) to roll (empty or null: all).
* ``strategy`` - ``blue_green`` / ``in_place`` / null (each pool's configured ``roll.strategy``).
* ``canary_only`` - publish (excluded from latest) and canary (create, steady, smoke test), no promotion, no roll.
* ``allow_downgrade`` - roll even to an older version than the serving one.
* ``dry_run`` - preflight and the plan only: nothing is written.

Pure: pydantic v2 and the stdlib, no Airflow, no Azure SDK.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from . import naming
from .errors import InvalidInput
from .ids import region_key

STRATEGIES = ("blue_green", "in_place")
BUILD = "build"
ROLLBACK, ROLL_TO_EXISTING, REVOKE = "rollback", "roll_to_existing", "revoke"
ROLL_ONLY_MODES = (ROLLBACK, ROLL_TO_EXISTING, REVOKE)
MODES = (BUILD, *ROLL_ONLY_MODES)
FIELDS = ("mode", "rebuild", "version", "target_regions", "pools", "strategy", "canary_only", "allow_downgrade", "dry_run")


# The form's version pattern checks the shape only: Airflow 3.3 refuses a value with jsonschema's own message, which
# quotes the pattern and dumps the schema (no custom message exists), so the pattern must read as the format itself.
# The 32-bit bound and leading zeros are preflight's (naming.validate_version_name: field, value, reason, fix).
# Empty allowed: the form sends "" for a field typed in and cleared again (parse_run_options reads it as unset).
VERSION_PATTERN = "^([0-9]+[.][0-9]+[.][0-9]+)?$"  # [.] rather than an escaped dot: the refusal repeats no backslashes
VERSION_EXAMPLE = "2026.1201.0"


class RunOptions(BaseModel):
    """The validated options (what the plan records as ``plan.options``). Lists hold region keys / logical pools;
    empty means all."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    mode: Literal["build", "rollback", "roll_to_existing", "revoke"] = "build"
    rebuild: int = 0
    version: str | None = None
    target_regions: list[str] = []
    pools: list[str] = []
    strategy: Literal["blue_green", "in_place"] | None = None
    canary_only: bool = False
    allow_downgrade: bool = False
    dry_run: bool = False

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @property
    def run_kind(self) -> str:
        """``dry_run``, ``canary_only``, ``full`` (a build) or the roll-only mode (what run_summary reports)."""
        if self.dry_run:
            return "dry_run"
        if self.canary_only:
            return "canary_only"
        return "full" if self.mode == BUILD else self.mode

    @property
    def roll_only(self) -> bool:
        """A run that builds nothing: it rolls pools to versions that exist (``rollback`` / ``roll_to_existing`` /
        ``revoke``)."""
        return self.mode in ROLL_ONLY_MODES

    @property
    def downgrade_allowed(self) -> bool:
        """``allow_downgrade``, implied by every roll-only mode."""
        return self.allow_downgrade or self.roll_only

    def rolls(self, logical_pool: str | None) -> bool:
        """Does this run roll ``logical_pool``? (every pool when ``pools`` is empty)"""
        return not self.pools or logical_pool in self.pools

    def keeps_region(self, region: str | None) -> bool:
        return not self.target_regions or region_key(region) in self.target_regions


def _fail(name: str, value: Any, reason: str, fix: str) -> InvalidInput:
    return InvalidInput(f"params.{name}", value, reason, fix)


def _int(name: str, value: Any, fix: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():  # the CLI's --conf and old forms send digits as text
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= naming.INT32_MAX:
        raise _fail(name, value, f"a whole number in 0..{naming.INT32_MAX} (the third part of the version, a "
                                 "32-bit integer in Azure)", fix)
    return value


def _bool(name: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(name, value, "a boolean (true or false)", f"pass {name}: true or {name}: false")


def _choices(name: str, value: Any, allowed: Sequence[str], key=lambda v: v, what: str = "value") -> list[str]:
    """A list of names, each one of ``allowed`` (compared by ``key``); null or empty: []."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [value]
    fix = f"pick from {', '.join(allowed)}, or leave it empty for all"
    if not isinstance(value, (list, tuple)):
        raise _fail(name, value, f"a list of {what}s", fix)
    known = {key(a): a for a in allowed}
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or key(item) not in known:
            raise _fail(name, value, f"{item!r} is not a configured {what}", fix)
        if key(item) not in out:
            out.append(key(item))
    return out


def parse_run_options(raw: Mapping[str, Any] | None, *, regions: Sequence[str], pools: Sequence[str],
                      known: Iterable[str] = ()) -> RunOptions:
    """Validate a run's params (the form's values, or ``--conf``) against the pipeline's configured regions and
    logical pools.

    :param raw: the run's params (missing keys take their defaults; null is the default of every field).
    :param regions: the configured target region names; ``pools`` the logical pools (``pool_id_prefix``).
    :param known: further param names the DAG declares (another feature's); any other key is refused, so a typo
        (``rebuid``) fails instead of being silently ignored.
    :raises InvalidInput: the first bad field, as ``params.<field>``.
    """
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(FIELDS) - set(known))
    if unknown:
        allowed = sorted({*FIELDS, *known})
        raise _fail(unknown[0], raw[unknown[0]], "not a param of this DAG",
                    f"use one of {', '.join(allowed)} (misspelt?)")
    rebuild = _int("rebuild", 0 if raw.get("rebuild") is None else raw["rebuild"],
                   "trigger the DAG with rebuild 0 for the first build of a date, 1 for the next, ...")
    version = raw.get("version")
    if isinstance(version, str) and not version.strip():
        version = None  # a cleared form field
    if version is not None:
        try:
            version = naming.validate_version_name(version, "params.version")
        except InvalidInput as err:
            raise InvalidInput(err.field, err.value, err.reason, err.fix) from None
        if rebuild:
            raise _fail("version", version, f"an explicit version and rebuild {rebuild} exclude each other: rebuild "
                                            "numbers the date-derived YYYY.MMDD.N, an explicit version has no N",
                        "set rebuild to 0 (to build the same version again, give a new version, e.g. raise its patch)")
    mode = raw.get("mode")
    mode = BUILD if mode in (None, "") else mode
    if mode not in MODES:
        raise _fail("mode", mode, "not a run mode", f"use one of {', '.join(MODES)} (build is the default)")
    if mode != BUILD:
        if rebuild:
            raise _fail("rebuild", rebuild, f"mode {mode} builds nothing, so it has no version to number",
                        "set rebuild to 0, or mode to build")
        if _bool("canary_only", raw.get("canary_only")):
            raise _fail("canary_only", True, f"mode {mode} rolls to a version that exists; a canary belongs to a "
                                             "build", "clear canary_only, or use mode build")
        if mode == ROLLBACK and version is not None:
            raise _fail("version", version, "mode rollback takes each logical pool back to the version it served "
                                            "before its current one, not to a version you name",
                        "clear version, or use mode roll_to_existing with that version")
        if mode != ROLLBACK and version is None:
            what = "to roll to" if mode == ROLL_TO_EXISTING else "to revoke"
            raise _fail("version", None, f"mode {mode} needs the existing version {what}",
                        f"give version, e.g. {VERSION_EXAMPLE} (az sig image-version list lists them)")
    strategy = raw.get("strategy")
    if strategy == "":
        strategy = None
    if strategy is not None and strategy not in STRATEGIES:
        raise _fail("strategy", strategy, "not a roll strategy",
                    f"use one of {', '.join(STRATEGIES)}, or null for each pool's configured roll.strategy")
    return RunOptions(
        mode=mode, rebuild=rebuild, version=version,
        target_regions=_choices("target_regions", raw.get("target_regions"), list(regions), region_key, "region"),
        pools=_choices("pools", raw.get("pools"), list(dict.fromkeys(pools)), what="logical pool"),
        strategy=strategy, canary_only=_bool("canary_only", raw.get("canary_only")),
        allow_downgrade=_bool("allow_downgrade", raw.get("allow_downgrade")),
        dry_run=_bool("dry_run", raw.get("dry_run")))


def check_coverage(options: RunOptions, *, gallery_region: str,
                   pool_regions: Iterable[tuple[str, str | None]]) -> list[InvalidInput]:
    """The problems of a ``target_regions`` subset: the gallery's region and the account region of every rolled
    pool must stay selected. ``pool_regions``: ``(logical pool, its Batch account's region)`` per configured pool."""
    if not options.target_regions:
        return []
    problems = []
    chosen = list(options.target_regions)
    if region_key(gallery_region) not in chosen:
        problems.append(_fail("target_regions", chosen, f"the gallery's own region {gallery_region} is not selected; "
                              "Azure keeps a version's first replica in its gallery's region",
                              f"add {gallery_region}, or leave target_regions empty for all"))
    for logical, region in pool_regions:
        if region and options.rolls(logical) and region_key(region) not in chosen:
            problems.append(_fail("target_regions", chosen, f"pool {logical}'s Batch account is in {region}, which is "
                                  "not selected; Batch allocates its nodes from the replica in that region",
                                  f"add {region}, or leave {logical} out of pools"))
    return problems


def param_schemas(regions: Sequence[str], pools: Sequence[str]) -> dict[str, dict]:
    """JSON schema (and the form's ``title`` / ``description`` / ``section``) of each param, for ``Param(**...)``.

    Arrays with ``items.enum`` validate; ``examples`` is what Airflow 3.3's form offers in its multi-select (it reads
    ``examples``, then ``enum``, of the array itself); a cleared multi-select sends null, hence ``["null", "array"]``.
    """
    version_sec, where_sec, how_sec = "Version", "Where", "How"
    pools = list(dict.fromkeys(pools))
    return {
        "mode": dict(default=BUILD, type="string", enum=list(MODES), section=version_sec, title="Mode",
                     values_display={BUILD: "build: build a new version and roll to it",
                                     ROLLBACK: "rollback: each pool back to its previous version (builds nothing)",
                                     ROLL_TO_EXISTING: "roll_to_existing: pools to the version below (builds nothing)",
                                     REVOKE: "revoke: revoke the version below, move its pools off it"},
                     description="build (default) builds a version and rolls to it. rollback, roll_to_existing and "
                                 "revoke build nothing: they roll the selected pools to versions that exist (docs/"
                                 "operations.md, \"Roll back\"); downgrades are allowed. roll_to_existing and revoke need Version."),
        "rebuild": dict(default=0, type="integer", minimum=0, maximum=naming.INT32_MAX, section=version_sec,
                        title="Rebuild number",
                        description="N in the version YYYY.MMDD.N: raise it to build a new version for a date that "
                                    "already has one. Leave 0 when you give a version."),
        "version": dict(default=None, type=["null", "string"], pattern=VERSION_PATTERN, section=version_sec,
                        # the title is in Airflow's refusal of a malformed value (its schema dump): the example too
                        title=f"Version (Major.Minor.Patch, e.g. {VERSION_EXAMPLE})",
                        examples=[VERSION_EXAMPLE],
                        description="An explicit gallery image version instead of the date-derived YYYY.MMDD.N: "
                                    "three whole numbers, each 0..2147483647 (Azure's 32-bit parts), no leading "
                                    "zeros. Empty: derived from the logical date."),
        "target_regions": dict(default=None, type=["null", "array"], uniqueItems=True,
                               items={"type": "string", "enum": list(regions)}, examples=list(regions),
                               section=where_sec, title="Target regions",
                               description="Replicate only to these configured regions (empty: all). The gallery's "
                                           "region and the Batch account region of every rolled pool must stay."),
        "pools": dict(default=None, type=["null", "array"], uniqueItems=True,
                      items={"type": "string", "enum": pools}, examples=pools, section=where_sec,
                      title="Logical pools to roll",
                      description="Roll only these logical pools (their pool_id_prefix; empty: all). The others keep "
                                  "their serving pool."),
        "strategy": dict(default=None, type=["null", "string"], enum=[None, *STRATEGIES], section=how_sec,
                         title="Roll strategy",
                         values_display={"null": "as configured (each pool's roll.strategy)",
                                         "blue_green": "blue_green: a new pool, work moved",
                                         "in_place": "in_place: re-image the serving pool (downtime)"},
                         description="Empty: each pool's configured roll.strategy. in_place pauses the pool's "
                                     "work while it is re-imaged (see docs/operations.md)."),
        "canary_only": dict(default=False, type="boolean", section=how_sec, title="Canary only",
                            description="Publish the version (excluded from latest) and make the canary pool (steady, "
                                        "smoke test), then stop: no promotion, no roll. The canary stays (role "
                                        "canary) for you to try; a later normal run of the same version adopts it."),
        "allow_downgrade": dict(default=False, type="boolean", section=how_sec, title="Allow downgrade",
                                description="Roll pools even when this run's version is older than the one serving "
                                            "them (a backfill never rolls back otherwise)."),
        "dry_run": dict(default=False, type="boolean", section=how_sec, title="Dry run",
                        description="Preflight and the plan only: the run prints every name, id, replica count and "
                                    "timeout a real run would use, and writes nothing to Azure."),
    }
