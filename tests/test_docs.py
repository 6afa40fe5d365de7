"""The docs site builds in strict mode, its generated pages are current, and the README's links land.

`mkdocs build --strict` (mkdocs.yml's ``validation``) fails on a broken link, a link to an anchor that does not exist
and a page missing from the nav; the README is outside the site (GitHub shows it), so its links into docs/ are checked
here against the built pages. The pipeline YAML reference and the troubleshooting page are generated
(tools/gen_pipeline_reference.py, tools/gen_troubleshooting.py); a committed page that differs from what its
generator writes now is stale.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
REGENERATE = "regenerate it: .venv/bin/python {}"


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not a warning of ours
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_docs_build_in_strict_mode(site):
    nav = {line.split(":", 1)[1].strip() for line in (ROOT / "mkdocs.yml").read_text().splitlines()
           if re.match(r"^\s+- [^:]+: \S+\.md$", line)}
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav, f"pages not in the nav: {pages - nav}; nav entries without a page: {nav - pages}"
    for page in pages:
        built = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert built.is_file(), page
    latest = sorted((ROOT / "benchmarks" / "results").glob("*.md"))[-1]
    assert (site / "benchmarks" / "results" / latest.name.removesuffix(".md") / "index.html").is_file()


def test_a_broken_link_or_a_page_missing_from_the_nav_fails_the_build(tmp_path):
    """The strict build can fail: a copy of the project with a bad anchor and a page left out of the nav."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", project / "benchmarks" / "results")
    (project / "tools").mkdir()
    shutil.copy(TOOLS / "mkdocs_hooks.py", project / "tools" / "mkdocs_hooks.py")
    with open(project / "docs" / "operations.md", "a") as page:
        page.write("\nSee [the roll](concepts.md#no-such-section).\n")
    (project / "docs" / "orphan.md").write_text("# Not in the nav\n")
    result = mkdocs_build(project, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "'concepts.md#no-such-section'" in output and "does not contain an anchor" in output, output
    assert "orphan.md" in output and "not included in the \"nav\"" in output, output


def test_readme_is_a_front_page_whose_links_into_docs_land(site):
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md is the front page: move details into docs/"
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert links, "the README links into docs/"
    for path, anchor in links:
        assert (ROOT / path).is_file(), path
        if anchor:
            page = path.removeprefix("docs/").removesuffix(".md")
            html = (site / ("" if page == "index" else page) / "index.html").read_text()
            assert f'id="{anchor}"' in html, f"README.md links to {path}#{anchor}, which that page does not have"


def _tool(name: str):
    sys.path.insert(0, str(TOOLS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(TOOLS))


def test_pipeline_yaml_reference_is_generated_from_the_current_schema():
    gen = _tool("gen_pipeline_reference")
    page = (ROOT / "docs" / "reference" / "pipeline-yaml.md").read_text()
    assert page == gen.render(json.loads(gen.SCHEMA.read_text())), REGENERATE.format("tools/gen_pipeline_reference.py")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert len(rows) > 50
    undescribed = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert not undescribed, f"fields without a description (add one to the model or NOTES): {undescribed}"
    assert "| `dag_id` | string" in page
    assert '| `roll` | [RollConfig](#rollconfig) | no | `{"strategy": "blue_green"' in page


def test_troubleshooting_is_generated_from_the_bad_input_table():
    gen = _tool("gen_troubleshooting")
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert page == gen.render(), REGENERATE.format("tools/gen_troubleshooting.py")
    from tests.reliability.test_bad_input import PARSE_CASES, PREFLIGHT_CASES

    for case in [*PARSE_CASES, *PREFLIGHT_CASES]:
        assert f"| {case.id.replace('-', ' ')} | `{case.field}` |" in page, case.id
    assert "Fix: give the full resource id of type Microsoft.Batch/batchAccounts" in page
