"""MkDocs hooks (mkdocs.yml ``hooks``): serve benchmarks/results/ beside the docs pages.

The results files stay where ``make bench`` writes them (benchmarks/results/<date>-<machine>.{json,md,png}); the
pages link to them as ``../benchmarks/results/<file>``, which works on GitHub, and these hooks make the same links
work in the built site: each results file is added to the site under ``benchmarks/results/`` and the ``../`` of such
links is dropped. Nothing else is changed.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
LINK_PREFIX = "](../benchmarks/results/"


def on_files(files: Files, config) -> Files:
    for path in sorted(RESULTS.glob("*")):
        if path.suffix in (".md", ".png", ".json"):
            files.append(File(f"benchmarks/results/{path.name}", src_dir=str(RESULTS.parent.parent),
                              dest_dir=config["site_dir"], use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    # docs/<page>.md -> ../benchmarks/results/x resolves outside docs/; in the site the file is at benchmarks/results/x
    if "/" not in page.file.src_uri:
        return markdown.replace(LINK_PREFIX, "](benchmarks/results/")
    return markdown
