"""The audit in the terminal: rich tables of the key numbers, from the JSON document alone."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from faceaudit.report.document import format_rate, terminal_text
from faceaudit.report.headline import differential_line, left_out_text

__all__ = ["print_audit", "print_headline", "fmt_rate"]


def fmt_rate(rate: dict[str, Any] | None) -> str:
    """``1.23e-04 (12/97,000) [6.4e-05, 2.1e-04]``; a zero count shows its rule-of-3 bound."""
    return format_rate(rate, "terminal")


def print_headline(doc: dict[str, Any], console: Console) -> None:
    """The plain-language headline and its caveats, first (Text: labels come from input files)."""
    head = doc.get("headline")
    if not head:
        return
    console.print(Text(head["sentence"], style="bold"))
    for caveat in head.get("caveats", []):
        console.print(Text(f"  - {caveat}"))
    console.print()


def print_audit(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    print_headline(doc, console)
    s, c, o = doc["settings"], doc["counts"], doc["overall"]
    console.print(
        f"[bold]faceaudit {doc['faceaudit_version']}[/bold]: {c['mated']:,} mated and {c['nonmated']:,} "
        f"non-mated comparisons, {c['subjects']:,} subjects, {c['samples']:,} samples"
    )
    if c["exclusions"]:
        for reason, n in c["exclusions"].items():
            console.print(f"  excluded: {n:,} — {terminal_text(reason)}")
    console.print(f"Threshold convention: [italic]{s['convention']}[/italic] — {s['convention_meaning']}")
    console.print(f"Overall EER {o['eer']:.4g} at threshold {o['eer_threshold']:.6g}")
    t = Table(title="Overall operating points (95% Clopper-Pearson intervals)")
    for col in ("target FMR", "threshold", "FMR", "FNMR"):
        t.add_column(col)
    for p in o["operating_points"]:
        t.add_row(f"{p['fmr_target']:g}", f"{p['threshold']:.6g}", fmt_rate(p["fmr"]), fmt_rate(p["fnmr"]))
    console.print(t)
    for grouping, entries in doc["by_group"].items():
        for i, target in enumerate(s["fmr_targets"]):
            t = Table(title=f"{terminal_text(grouping)}: at the global threshold for FMR {target:g}")
            for col in ("group", "mated", "non-mated", "FMR", "FNMR", "EER"):
                t.add_column(col)
            for e in entries:
                g = e["at_global_threshold"][i]
                eer = "n/a" if e["eer"] is None else f"{e['eer']:.3g}"
                t.add_row(
                    terminal_text(e["group"]),
                    f"{e['mated']:,}",
                    f"{e['nonmated']:,}",
                    fmt_rate(g["fmr"]),
                    fmt_rate(g["fnmr"]),
                    eer,
                )
            console.print(t)
        for d in doc["differentials"].get(grouping, []):
            # Text, not markup: group names come from input files
            line = (
                differential_line(d)
                if "fmr" in d
                # a 1.0-1.1 document: its plain ratios
                else (f"FMR max/min {d.get('fmr_max_min_ratio')}, FNMR max/min {d.get('fnmr_max_min_ratio')}")
            )
            console.print(Text(f"  {grouping} @ FMR {d['fmr_target']:g} (95% intervals): {line}"))
            for rate in ("fmr", "fnmr"):
                if isinstance(d.get(rate), dict) and d[rate].get("left_out"):
                    console.print(Text(f"    left out of {rate.upper()}: {left_out_text(d, rate)}"))
    for k, sc in enumerate(doc.get("scenarios") or [], 1):
        # Text, not markup: labels inside the statement and flags come from input files
        console.print(Text(f"Scenario {k}: {sc.get('statement') or ''}"))
        for flag in sc.get("flags") or []:
            console.print(Text(f"  FLAG: {flag}", style="bold red"))
