"""``gear families``: every stimulus family (built in or plug-in) with its factors."""
from __future__ import annotations

import json

__all__ = ["add_parsers", "families_table"]


def add_parsers(sub) -> None:
    p = sub.add_parser("families", help="list the stimulus families and their factors",
                       description="Every stimulus family (built in, or a plug-in registered in the 'gear.families' "
                       "entry-point group) with where it comes from, its options and its factors: name, unit, "
                       "design range, scale, kind, role and the statistic that scores it. Use one with "
                       "`gear run --family NAME` or `gear synth --family NAME`.")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=_cmd_families)


def _range_text(factor: dict) -> str:
    if factor["kind"] == "discrete":
        return "{" + ", ".join(str(v) for v in factor["range"]) + "}"
    low, high = factor["range"]
    return f"{low:g} - {high:g}"


def families_table(families) -> str:
    """The text of ``gear families`` for :func:`synth.list_families` entries."""
    header = f"  {'factor':<18}{'unit':<13}{'range':<26}{'scale':<8}{'kind':<12}{'role':<10}statistic"
    lines = []
    for entry in families:
        lines.append(f"{entry['name']}  [{entry['source']}]")
        if entry.get("description"):
            lines.append(f"  {entry['description']}")
        if entry.get("error"):
            lines.append(f"  cannot be loaded: {entry['error']}")
            lines.append("")
            continue
        lines.append(header)
        for f in entry["factors"]:
            lines.append(f"  {f['name']:<18}{f['unit'] or '-':<13}{_range_text(f):<26}{f['scale']:<8}{f['kind']:<12}"
                         f"{f['role']:<10}{f['statistic']}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _cmd_families(args) -> int:
    import synth

    families = synth.list_families()
    print(json.dumps(families, indent=2, default=str) if args.json else families_table(families))
    return 0
