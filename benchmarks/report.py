"""The benchmarks' outputs: one text table, its Markdown twin, the JSON document and a PNG chart.

matplotlib is imported only in :func:`chart` (benchmarks only; DAGs and plugins never load it).
"""
from __future__ import annotations

from pathlib import Path

from benchmarks.common import MISSED, Bench

COLUMNS = ("benchmark", "figure", "ours", "reference", "ratio", "target", "verdict")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        for size, suffix in ((1 << 20, " MiB"), (1 << 10, " KiB")):
            if abs(value) >= size:
                return f"{value / size:.1f}{suffix}"
        return f"{value:.0f} B"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else (f"{value:.3g}x" if value < 100 else f"{value:,.0f}x")


def rows(benches: list[Bench]) -> list[tuple[str, ...]]:
    out = []
    for b in benches:
        if b.error:
            out.append((b.title, "benchmark failed", "-", "-", "-", "-", f"ERROR: {b.error}"))
            continue
        for r in b.rows:
            unit = "" if r.unit in ("bytes",) else f" {r.unit}"
            out.append((b.title, r.metric, fmt(r.ours, r.unit) + (unit if r.ours is not None else ""),
                        fmt(r.reference, r.unit) + (unit if r.reference is not None else ""),
                        fmt_ratio(r.ratio), r.target or "-",
                        r.status + (f" ({r.note})" if r.note else "")))
    return out


def text_table(benches: list[Bench]) -> str:
    body = rows(benches)
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    widths[-1] = len(COLUMNS[-1])  # the verdict column may be long: let it run on
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    last = None
    for r in body:
        first = r[0] if r[0] != last else ""
        last = r[0]
        out.append("  ".join(c.ljust(w) for c, w in zip((first, *r[1:]), widths)).rstrip())
    return "\n".join(out)


def markdown(benches: list[Bench], meta: dict) -> str:
    m = meta["machine"]
    lines = [f"# Benchmarks {meta['date']}", "",
             f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Python {m['python']}; "
             f"1-min load average at start {m['load_1min_at_start']:.1f}"
             + (f", after each benchmark {', '.join(f'{v:.1f}' for v in meta['load_1min'].values())}"
                if meta.get("load_1min") else "")
             + " (a shared machine: absolute figures are noisy, compare the ratios measured side by side). "
             f"`make bench{_bench_args(meta)}` ran in "
             f"{meta['seconds']:.0f} s against the local stand-in.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    last = None
    for r in rows(benches):
        first = r[0] if r[0] != last else ""
        last = r[0]
        cells = [first, *r[1:]]
        if MISSED in cells[-1]:
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    for b in benches:
        lines += [f"## {b.title}", "", f"- Measures: {b.measures}", f"- Unit: {b.unit}",
                  f"- Reference: {b.reference}", f"- Ratio: {b.ratio_reads}"]
        lines += [f"- {n}" for n in b.notes]
        if b.error:
            lines.append(f"- ERROR: {b.error}")
        lines.append("")
    if meta.get("chart"):
        lines += [f"![chart]({meta['chart']})", ""]
    return "\n".join(lines)


def _bench_args(meta: dict) -> str:
    """The BENCH_ARGS of the run, as a user would type them."""
    args = ["--services"] if meta.get("services") else []
    if meta.get("azure_speed"):
        scale = meta.get("azure_scale")
        args.append("--azure-speed" + (f" --azure-scale {scale:g}" if scale not in (None, 1) else ""))
    return f" BENCH_ARGS='{' '.join(args)}'" if len(args) > 1 else (f" BENCH_ARGS={args[0]}" if args else "")


def chart(benches: list[Bench], path: Path, title: str) -> Path | None:
    """One panel per benchmark that has a reference: ours and the reference per figure, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [b for b in benches if not b.error and any(r.ours is not None for r in b.rows)]
    if not panels:
        return None
    import textwrap

    # one column: the figures' names are long (they carry the time scale), and two columns clipped them
    cols = 1
    nrows = len(panels)
    fig, axes = plt.subplots(nrows, cols, figsize=(12, 3.4 * nrows), squeeze=False)
    for ax, b in zip(axes.flat, panels):
        # the rows with a target first (stable: in the table's order), then the others, nine at most
        figs = sorted((r for r in b.rows if r.ours is not None), key=lambda r: not r.target or r.target == "-")[:9]
        labels = [r.metric for r in figs]
        ys = range(len(figs))
        ours = [max(r.ours, 1e-6) for r in figs]
        refs = [max(r.reference, 1e-6) if r.reference is not None else 0 for r in figs]
        has_ref = any(r.reference is not None for r in figs)
        h = 0.38 if has_ref else 0.6
        colors = ["#c0392b" if r.status == MISSED else "#2e86c1" for r in figs]
        ax.barh([y - (h / 2 if has_ref else 0) for y in ys], ours, height=h, color=colors, label="ours")
        if has_ref:
            ax.barh([y + h / 2 for y in ys], refs, height=h, color="#aab7b8", label="reference")
        for y, r in zip(ys, figs):
            tag = fmt(r.ours, r.unit) + (f"  ({fmt_ratio(r.ratio)})" if r.ratio is not None else "")
            ax.text(max(r.ours, 1e-6), y - (h / 2 if has_ref else 0), " " + tag, va="center", fontsize=7)
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        # room on the right for the value labels (a decade and a half past the longest bar), on a log axis
        ax.set_xlim(right=max(ours + refs) * 30)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap on short ranges
        ax.set_title("\n".join([b.title, *textwrap.wrap(f"vs {b.reference}", 110)]) if has_ref else b.title,
                     fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        if has_ref:
            from matplotlib.patches import Patch

            handles = [Patch(color="#2e86c1", label="ours"), Patch(color="#c0392b", label="ours, target missed"),
                       Patch(color="#aab7b8", label="reference")]
            ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the panel
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title + "  (log scale; red = target missed; label: ours (ratio))", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
