"""The per-model "disentanglement card": plotly figures and an HTML fragment."""
from __future__ import annotations

import math
import re

import numpy as np

from gear.errors import ParameterError

__all__ = ["disentanglement_card", "disentanglement_card_html", "metric_table_rows", "CARD_FIGURES",
           "CHANCE"]

#: Keys of the figures of a card, in display order.
CARD_FIGURES = ("sensitivity", "probes", "residual_variance", "barcode")

_DIM_COLOURS = ("#1f77b4", "#d62728", "#2ca02c")
_MAX_BARS = 25  # longest bars drawn per homology dimension


def _check(result):
    from . import DisentanglementResult

    if not isinstance(result, DisentanglementResult):
        raise ParameterError(
            f"expected the DisentanglementResult of compute_disentanglement, got "
            f"{type(result).__name__}"
        )


def _title(model: str, text: str) -> str:
    return f"{model}: {text}" if model else text


def _sensitivity_figure(result, model):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(result.param_names)
    sens = result.sensitivity
    O = np.array(sens["overlap"], dtype=float)
    text = [[("" if i == j else ("n/a" if np.isnan(O[i, j]) else f"{O[i, j]:.2f}"))
             for j in range(len(names))] for i in range(len(names))]
    Z = O.copy()
    np.fill_diagonal(Z, np.nan)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.15,
                        subplot_titles=("sensitivity S (spreads per std)",
                                        "direction overlap |cos|"))
    fig.add_trace(go.Bar(x=names, y=sens["sensitivity"], marker_color="#4c78a8",
                         text=[f"{v:.2f}" for v in sens["sensitivity"]], textposition="outside",
                         name="sensitivity", showlegend=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=Z, x=names, y=names, zmin=0.0, zmax=1.0, colorscale="Reds",
                             text=text, texttemplate="%{text}", hoverongaps=False,
                             colorbar=dict(title="|cos|", len=0.9),
                             hovertemplate="%{y} vs %{x}: |cos| = %{z:.3f}<extra></extra>"),
                  row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    score = sens["score"]
    fig.update_layout(
        title=_title(model, f"sensitivity and overlap ({sens['method'].replace('_', ' ')}); "
                            f"disentanglement score {score:.2f}"),
        height=360, margin=dict(l=50, r=20, t=70, b=40),
    )
    return fig


def _probe_figure(result, model):
    import plotly.graph_objects as go

    names = list(result.param_names)
    fig = go.Figure()
    series = [("ridge", "ridge", "#4c78a8"), ("mlp", "MLP", "#f58518"),
              ("chance", "chance (mean)", "#bab0ac")]
    lows = [0.0]
    for key, label, colour in series:
        if key not in result.probes:
            continue
        vals = np.asarray(result.probes[key], dtype=float)
        lows.append(float(np.nanmin(vals)))
        fig.add_trace(go.Bar(x=names, y=vals, name=label, marker_color=colour,
                             text=[f"{v:.2f}" for v in vals], textposition="outside"))
    fig.update_layout(
        barmode="group",
        title=_title(model, "probe R² (grouped cross-validation, parameters on their scales)"),
        yaxis=dict(title="R²", range=[min(-0.1, min(lows) - 0.15), 1.12]),
        height=360, margin=dict(l=50, r=20, t=60, b=40),
    )
    return fig


def _residual_figure(result, model):
    import plotly.graph_objects as go

    iso = result.isomap
    k = np.asarray(iso["n_components"])
    rv = np.asarray(iso["residual_variance"], dtype=float)
    d = int(iso["intrinsic_dimension"])
    fig = go.Figure(go.Scatter(x=k, y=rv, mode="lines+markers", name="residual variance",
                               hovertemplate="%{x} components: %{y:.3f}<extra></extra>"))
    fig.add_vline(x=d, line_dash="dash", line_color="#888",
                  annotation_text=f"intrinsic dimension {d}", annotation_position="top right")
    lm = iso.get("landmarks")
    how = "exact" if lm is None else f"{len(lm)} landmarks"
    fig.update_layout(
        title=_title(model, f"Isomap residual variance (K = {iso['n_neighbors']}, {how})"),
        xaxis=dict(title="Isomap components", tickmode="array", tickvals=list(k)),
        yaxis=dict(title="1 - R²(geodesic, Isomap)", range=[0, 1.02]),
        height=360, margin=dict(l=50, r=20, t=60, b=40),
    )
    return fig


def _bars(topo, dim):
    """(birth, death, alive_at_cut) of the bars of one dimension, longest first."""
    cut = float(topo["cut"])
    if dim == 0:  # from the minimum spanning tree of all sounds, plus the infinite bar
        edges = np.sort(np.asarray(topo["mst_edges"], dtype=float))[::-1]
        birth = np.zeros(edges.size + 1)
        death = np.concatenate([[cut], edges])
        alive = np.zeros(edges.size + 1, bool)
        alive[0] = True
        return birth, death, alive
    dg = np.asarray(topo["diagrams"][dim], dtype=float).reshape(-1, 2)
    alive = dg[:, 1] >= cut * (1 - 1e-12)
    order = np.argsort(-(dg[:, 1] - dg[:, 0]), kind="stable")
    return dg[order, 0], dg[order, 1], alive[order]


def _barcode_figure(result, model):
    import plotly.graph_objects as go

    topo = result.topology
    cut = float(topo["cut"])
    cutoffs = np.asarray(topo["long_lived_cutoffs"], dtype=float)
    fig = go.Figure()
    y0 = 0
    ticks, labels = [], []
    for dim in range(len(topo["betti"])):
        birth, death, alive = _bars(topo, dim)
        birth, death, alive = birth[:_MAX_BARS], death[:_MAX_BARS], alive[:_MAX_BARS]
        if birth.size == 0:
            continue
        long = (death - birth) > cutoffs[dim]
        if dim == 0:
            long[0] = True  # the one component that never dies
        colour = _DIM_COLOURS[dim % 3]
        for flag, width, opacity, suffix in ((True, 5, 1.0, "long-lived"),
                                             (False, 2, 0.35, "short")):
            xs, ys, hover = [], [], []
            for rank in np.flatnonzero(long == flag):
                y = y0 + int(rank)
                note = " (alive at the cut)" if alive[rank] else ""
                text = f"H{dim}: born {birth[rank]:.3f}, dies {death[rank]:.3f}{note}"
                xs += [birth[rank], death[rank], None]
                ys += [y, y, None]
                hover += [text, text, None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"H{dim} {suffix}",
                                         line=dict(color=colour, width=width),
                                         opacity=opacity, text=hover,
                                         hovertemplate="%{text}<extra></extra>"))
        ticks.append(y0 + (birth.size - 1) / 2)
        labels.append(f"H{dim}: b{dim} = {int(topo['betti'][dim])}")
        y0 += birth.size + 3
    fig.add_vline(x=float(topo["threshold"]), line_dash="dot", line_color="#888",
                  annotation_text="long-lived threshold", annotation_position="top right")
    fig.update_layout(
        title=_title(model, f"persistence barcode (H0 from all sounds, H1/H2 from a "
                            f"{len(topo['landmarks'])}-point sub-sample; features a box lacks: "
                            f"{int(topo['extra_features'])})"),
        xaxis=dict(title="scale (fraction of the cloud's diameter)", range=[0, cut * 1.02]),
        yaxis=dict(tickmode="array", tickvals=ticks, ticktext=labels, autorange="reversed",
                   showgrid=False, zeroline=False),
        height=460, margin=dict(l=100, r=20, t=60, b=40), showlegend=False,
    )
    return fig


def disentanglement_card(result, *, model: str = "") -> dict:
    """Plotly figures of one model's disentanglement card.

    Parameters
    ----------
    result : DisentanglementResult
        From :func:`gear.disentangle.compute_disentanglement`.
    model : str
        Model name shown in the titles.

    Returns
    -------
    dict of str -> plotly.graph_objects.Figure
        Keys :data:`CARD_FIGURES`: ``"sensitivity"`` (sensitivity bars and the overlap
        heatmap), ``"probes"`` (probe R^2 bars), ``"residual_variance"`` (Isomap curve with
        the intrinsic dimension) and ``"barcode"`` (persistence barcode, longest bars per
        dimension, with the long-lived threshold).
    """
    _check(result)
    return {
        "sensitivity": _sensitivity_figure(result, model),
        "probes": _probe_figure(result, model),
        "residual_variance": _residual_figure(result, model),
        "barcode": _barcode_figure(result, model),
    }


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()
    return slug or "model"


#: Chance level of each metric of :mod:`gear.metrics` shown in the card: a metric name whose
#: row holds it, or a fixed value.
CHANCE = {
    "normalised_score": 1.0, "mean_abs_log_ratio": "chance", "purity": "purity_chance",
    "davies_bouldin": "davies_bouldin_chance", "silhouette": "silhouette_chance",
    "dci_disentanglement": 0.0, "dci_completeness": 0.0, "dci_informativeness": 0.0,
    "mig": 0.0, "sap": 0.0, "explicitness": 0.5, "sweep_spearman": 0.0,
}
_CARD_METRICS = ("normalised_score", "mean_abs_log_ratio", "purity", "dci_disentanglement",
                 "dci_completeness", "dci_informativeness", "mig", "sap", "modularity",
                 "explicitness", "davies_bouldin", "silhouette", "sweep_spearman")


def _ci_text(row) -> str:
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{low:.3g}, {high:.3g}]"


def metric_table_rows(metrics) -> list:
    """Card table rows (metric, parameter, value, CI, chance, note) of the shown metrics."""
    index = {(r["metric"], r["parameter"]): r for r in metrics}
    out = []
    for r in metrics:
        if r["metric"] not in _CARD_METRICS:
            continue
        chance = CHANCE.get(r["metric"], "")
        if isinstance(chance, str) and chance:
            chance = index.get((chance, r["parameter"]), {}).get("value", "")
        out.append({"metric": r["metric"], "parameter": r["parameter"], "value": r["value"],
                    "95 % CI": _ci_text(r), "chance": chance, "note": r.get("note", "")})
    return out


def disentanglement_card_html(result, *, model: str = "") -> str:
    """The card as an HTML fragment: a heading, a one-line summary, the table of the
    comparable metrics (with chance levels) and the four figures (template ``card.html``).

    plotly.js is not included (the page loads it once); element ids are
    ``gear-disentangle-<model slug>-<figure key>``, so the fragment is reproducible.

    Parameters
    ----------
    result : DisentanglementResult
    model : str

    Returns
    -------
    str
    """
    from gear import html as gear_html
    from gear.metrics import mean_normalised_score

    figs = disentanglement_card(result, model=model)
    slug = _slug(model)
    get = result.value
    summary = (
        f"disentanglement score {get('disentanglement_score'):.2f} · "
        f"intrinsic dimension {int(get('intrinsic_dimension'))} · "
        f"trustworthiness {get('trustworthiness'):.3f} · "
        f"continuity {get('continuity'):.3f} · "
        f"Betti (b0, b1, b2) = ({int(get('betti_0'))}, {int(get('betti_1'))}, "
        f"{int(get('betti_2'))})"
    )
    table = ""
    if result.metrics:
        columns = ("metric", "parameter", "value", "95 % CI", "chance", "note")
        table = gear_html.Markup(gear_html.table(columns, metric_table_rows(result.metrics)))
    figures = [(key, gear_html.Markup(figs[key].to_html(
        full_html=False, include_plotlyjs=False, div_id=f"gear-disentangle-{slug}-{key}")))
        for key in CARD_FIGURES]
    return gear_html.render("card.html", slug=slug, model=model, summary=summary,
                            metrics_table=table, figures=figures,
                            mean_normalised=mean_normalised_score(result.metrics))
