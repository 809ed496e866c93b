"""The timbre module's HTML pages, rendered through :mod:`gear.html` (Jinja2 templates
``gear/templates/timbre_*.html``; every table through :func:`gear.html.table`)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from gear import html
from gear.files import atomic_write_text
from gear.timbre.validation import OUT_OF_SAMPLE_MODES

__all__ = ["ALIGNMENT_NOTE", "summary_rows", "write_table_html", "write_published_html", "write_robustness_html"]

#: Why unaligned representations are left out (shown on every timbre page).
ALIGNMENT_NOTE = (
    "Alignment of each representation's rows with the ratings (a column of every CSV): "
    "auditory_spectrum and stmf rows follow each study's sorted sound order (aligned); stft and "
    "scattering rows follow another fixed order per study, given explicitly in "
    "stft_scattering_row_order.csv (matched to GEAR's own STFT of every sound, per-row correlation "
    ">= 0.9999 for almost all rows, and confirmed for scattering by the 70 byte-identical sound files "
    "shared between studies, which land where that order puts them) and are realigned; clap, encodec, "
    "mert_avg and mert_concat rows follow a third order that cannot be recovered without the models "
    "(the same byte-identical files land on inconsistent rows), so they are unaligned: any P2 on them "
    "measures a shuffled pairing (mert_concat, 9 984 features for at most 190 pairs, reaches P2 close "
    "to 1 even under random row orders; with fixed distances, where nothing is learned, their rank "
    "correlation with the ratings is at chance). Unaligned sets are left out unless asked for "
    "(--include-unaligned), and then only as a shuffled-pairing control."
)


def _median_iqr(values: Sequence[float]) -> Tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float(q3 - q1)


def summary_rows(by: Dict[Tuple[str, str], float], studies: Sequence[str], columns: Sequence[str]) -> List[dict]:
    """One row per study (``{column: by[(study, column)]}``) and the median and IQR rows."""
    rows = [{"study": s, **{c: by.get((s, c), "") for c in columns}} for s in studies]
    for label, idx in (("median", 0), ("IQR", 1)):
        rows.append({"study": label, **{c: _median_iqr([by[(s, c)] for s in studies if (s, c) in by])[idx]
                                         for c in columns}})
    return rows


def _labels(reps: Sequence[str], alignment: Dict[str, str]) -> Dict[str, str]:
    return {r: f"{r} ({alignment.get(r, '')})" for r in reps}


def write_table_html(rows: List[dict], path) -> Path:
    """The explained-variance page: one table per mode (studies x representations, median
    and IQR) and, when an out-of-sample mode ran, the ranking of the representations by
    their median out-of-sample ``P^2``."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    studies = list(dict.fromkeys(r["study"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    alignment = {r["representation"]: r.get("alignment", "") for r in rows}
    labels = _labels(reps, alignment)
    sections = []
    for mode in modes:
        by = {(r["study"], r["representation"]): float(r["p2"]) for r in rows if r["mode"] == mode}
        validation = next(r.get("validation", "") for r in rows if r["mode"] == mode)
        table = html.table(["study"] + reps, summary_rows(by, studies, reps), labels=labels, digits=2)
        sections.append({"mode": mode, "validation": validation, "table": html.Markup(table)})
    ranking, ranking_mode = "", ""
    oos = [m for m in modes if m in OUT_OF_SAMPLE_MODES]
    if oos:
        ranking_mode = oos[0]
        med = {m: {r: _median_iqr([float(x["p2"]) for x in rows if x["mode"] == m and x["representation"] == r])[0]
                   for r in reps} for m in modes}
        order = sorted(reps, key=lambda r: -med[ranking_mode][r])
        cols = ["rank", "representation", "alignment"] + [f"median {m}" for m in modes]
        table_rows = [{"rank": i + 1, "representation": r, "alignment": alignment[r],
                       **{f"median {m}": med[m][r] for m in modes}} for i, r in enumerate(order)]
        ranking = html.Markup(html.table(cols, table_rows, digits=2))
    page = html.render("timbre_table.html", sections=sections, ranking=ranking, ranking_mode=ranking_mode,
                       alignment_note=ALIGNMENT_NOTE)
    return atomic_write_text(path, page)


def write_published_html(rows: List[dict], path) -> Path:
    """The published-versus-GEAR page (one row per study x representation)."""
    cols = ["study", "representation", "alignment", "published", "faithful", "exact", "out_of_sample"]
    table = html.Markup(html.table(cols, rows, digits=3))
    return atomic_write_text(path, html.render("timbre_published.html", table=table, alignment_note=ALIGNMENT_NOTE))


def _robustness_figure(rows: List[dict], studies, reps, delta_bar: dict, noise: str) -> str:
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    ncol = 4
    nrow = max(1, int(np.ceil(len(studies) / ncol)))
    fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=studies, shared_yaxes=True,
                        horizontal_spacing=0.03, vertical_spacing=0.25 / max(nrow, 1) + 0.02)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    for si, s in enumerate(studies):
        rr, cc = si // ncol + 1, si % ncol + 1
        for ri, rep in enumerate(reps):
            sel = [r for r in rows if r["study"] == s and r["representation"] == rep]
            ds = sorted({float(r["delta"]) for r in sel})
            vals = [[float(r["p2"]) for r in sel if float(r["delta"]) == d] for d in ds]
            mean, lo, hi = ([float(f(v)) for v in vals] for f in (np.mean, np.min, np.max))
            colour = palette[ri % len(palette)]
            fig.add_trace(go.Scatter(x=ds + ds[::-1], y=hi + lo[::-1], fill="toself", fillcolor=colour,
                                     opacity=0.15, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                     legendgroup=rep), row=rr, col=cc)
            fig.add_trace(go.Scatter(x=ds, y=mean, mode="lines+markers", name=rep, legendgroup=rep,
                                     showlegend=si == 0, line={"color": colour}, marker={"size": 4},
                                     hovertemplate=f"{s}<br>{rep}<br>delta=%{{x:.3g}}<br>P2=%{{y:.3f}}<extra></extra>"),
                          row=rr, col=cc)
        if delta_bar.get(s):
            fig.add_vline(x=delta_bar[s], line_dash="dash", line_color="#444", row=rr, col=cc)
    fig.update_xaxes(type="log", title_text="delta")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(height=280 * nrow + 120, width=1300, legend={"orientation": "h", "y": -0.05},
                      title=f"Robustness of the learned metric to noisy ratings — noise convention: {noise}")
    return pio.to_html(fig, include_plotlyjs=True, full_html=False)


def write_robustness_html(rows: List[dict], auc_rows: List[dict], path, *, meta: Optional[dict] = None) -> Path:
    """Standalone interactive page (plotly.js embedded): one panel per study, mean ``P^2``
    over realisations (band: min-max) against delta (log axis), a dashed line at
    ``delta_bar``, and the AUC table."""
    meta = meta or {}
    noise = meta.get("noise") or (rows[0]["noise"] if rows else "")
    studies = list(dict.fromkeys(r["study"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    plot = _robustness_figure(rows, studies, reps, meta.get("delta_bar", {}), noise)
    by = {(a["study"], a["representation"]): float(a["auc"]) for a in auc_rows}
    alignment = {a["representation"]: a.get("alignment", "") for a in auc_rows}
    table = html.table(["study"] + reps, summary_rows(by, studies, reps), labels=_labels(reps, alignment))
    page = html.render("timbre_robustness.html", noise=noise, formula=meta.get("noise_formula", noise),
                       plot=html.Markup(plot), table=html.Markup(table), alignment_note=ALIGNMENT_NOTE)
    return atomic_write_text(path, page)
