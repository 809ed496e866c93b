"""Tests of gear.disentangle: controls with known answers, reference packages, bad inputs."""
import csv
import math
import os
import warnings

import numpy as np
import pytest

from gear import ParameterError
from gear.disentangle import (
    DISENTANGLEMENT_COLUMNS,
    DisentanglementResult,
    compute_disentanglement,
    control_embeddings,
    control_theta,
    disentanglement_card,
    disentanglement_card_html,
    disentanglement_metrics,
    intrinsic_dimension,
    isomap_residual_variance,
    persistence_summary,
    pivot_metrics,
    principal_scores,
    probe_folds,
    probe_r2,
    read_disentanglement_csv,
    sensitivity_analysis,
    trustworthiness_continuity,
    write_disentanglement_csv,
)
from gear.disentangle.topology import _mst_edges

NAMES = ("f1_hz", "alpha", "r")


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper():
    """A paper-like set (30 x 30 alpha-r grid, f1 random over two octaves)."""
    return control_theta("paper", n_alpha=30, n_r=30, random_state=0)


@pytest.fixture(scope="module")
def factorial():
    return control_theta("factorial", n_f1=9, n_alpha=10, n_r=10)


@pytest.fixture(scope="module")
def paper_results(paper):
    """All metrics of every control on the paper-like set (computed once)."""
    theta, grid = paper
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, emb in control_embeddings(theta, random_state=1).items():
            out[name] = compute_disentanglement(emb, theta, grid_index=grid, random_state=0,
                                                extended=False)  # gear.metrics: test_metrics*.py
    return out


def _analytic_linear(z, A):
    """Sensitivity summaries of the linear embedding x = z @ A (independent formulas)."""
    p = A.shape[0]
    X = z @ A
    s2 = np.mean(np.sum((X - X.mean(0)) ** 2, axis=1))
    norms = np.linalg.norm(A, axis=1)
    sens = norms / np.sqrt(s2)
    C = (A @ A.T) / np.outer(norms, norms)
    s2j = sens**2
    balance = np.exp(np.mean(np.log(s2j))) / max(np.mean(s2j), 1.0 / p)
    return sens, np.abs(C), np.linalg.det(C), balance


def _zscore(theta):
    u = theta.copy()
    u[:, 0] = np.log(u[:, 0])
    return (u - u.mean(0)) / u.std(0)


# ----------------------------------------------------------------------------------------------
# sensitivity and invariance
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset,method", [("factorial", "finite_difference"),
                                            ("factorial", "regression"),
                                            ("paper", "regression")])
@pytest.mark.parametrize("control", ["theta", "linear512"])
def test_sensitivity_of_linear_controls_is_analytic(dataset, method, control, request):
    theta, grid = request.getfixturevalue(dataset)
    z = _zscore(theta)
    rng = np.random.default_rng(5)
    A = np.eye(3) if control == "theta" else rng.standard_normal((3, 512))
    res = sensitivity_analysis(z @ A, theta, grid_index=grid, method=method,
                               overlap_blocks=1)
    sens, cos, det, balance = _analytic_linear(z, A)
    assert res["method"] == method
    np.testing.assert_allclose(res["sensitivity"], sens, rtol=1e-7)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(res["overlap"][off], cos[off], atol=1e-7)
    assert res["orthogonality"] == pytest.approx(det, abs=1e-7)
    assert res["balance"] == pytest.approx(balance, abs=1e-7)
    assert res["score"] == pytest.approx(det * balance, abs=1e-7)
    if control == "theta":
        np.testing.assert_allclose(res["sensitivity"], 1 / np.sqrt(3), rtol=1e-9)
        assert res["score"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("dataset,method", [("factorial", "finite_difference"),
                                            ("paper", "regression")])
def test_sensitivity_is_debiased_for_roughness(dataset, method, request):
    """x = [z, 0.1 * noise]: the true Jacobian has unit columns, so S_j * spread = 1, while the
    plain (biased) squared finite differences are much larger."""
    theta, grid = request.getfixturevalue(dataset)
    z = _zscore(theta)
    rng = np.random.default_rng(3)
    X = np.hstack([z, 0.1 * rng.standard_normal((z.shape[0], 20))])
    spread = np.sqrt(np.mean(np.sum((X - X.mean(0)) ** 2, axis=1)))
    res = sensitivity_analysis(X, theta, grid_index=grid, method=method)
    np.testing.assert_allclose(res["sensitivity"] * spread, 1.0, rtol=0.05)
    assert res["score"] > 0.85
    if method == "finite_difference":
        # brute force: plain central differences along alpha, without debiasing
        lookup = {tuple(c): i for i, c in enumerate(grid)}
        sq = []
        for i, c in enumerate(grid):
            lo, hi = tuple(c - [0, 1, 0]), tuple(c + [0, 1, 0])
            if lo in lookup and hi in lookup:
                a, b = lookup[lo], lookup[hi]
                sq.append(np.sum((X[b] - X[a]) ** 2) / (z[b, 1] - z[a, 1]) ** 2)
        assert np.mean(sq) > 1.2  # the bias the estimator removes


@pytest.mark.parametrize("dataset,method", [("factorial", "finite_difference"),
                                            ("paper", "regression")])
def test_dropped_parameter_is_invariant(dataset, method, request):
    theta, grid = request.getfixturevalue(dataset)
    emb = control_embeddings(theta)["drop_r"]
    res = sensitivity_analysis(emb, theta, grid_index=grid, method=method)
    assert res["sensitivity"][2] < 1e-6
    np.testing.assert_allclose(res["sensitivity"][:2], 1 / np.sqrt(2), rtol=1e-6)
    assert res["overlap"][0, 1] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(res["overlap"][0, 2]) and np.isnan(res["overlap"][1, 2])
    assert res["balance"] == 0.0 and res["score"] == 0.0


def test_finite_differences_agree_with_regression_on_a_smooth_embedding(factorial):
    theta, grid = factorial
    z = _zscore(theta)
    rng = np.random.default_rng(11)
    X = np.tanh(z @ rng.standard_normal((3, 64)) * 0.5 + rng.standard_normal(64))
    fd = sensitivity_analysis(X, theta, grid_index=grid, method="finite_difference")
    reg = sensitivity_analysis(X, theta, grid_index=grid, method="regression")
    np.testing.assert_allclose(fd["sensitivity"], reg["sensitivity"], rtol=0.08)
    assert abs(fd["score"] - reg["score"]) < 0.1


def test_auto_method_falls_back_to_regression_off_grid(paper, factorial):
    theta, grid = paper
    emb = control_embeddings(theta)["theta"]
    res = sensitivity_analysis(emb, theta, grid_index=grid)
    assert res["method"] == "regression" and "f1_hz" in res["note"]
    with pytest.raises(ParameterError, match="finite_difference.*f1_hz"):
        sensitivity_analysis(emb, theta, grid_index=grid, method="finite_difference")
    ft, fg = factorial
    assert sensitivity_analysis(control_embeddings(ft)["theta"], ft,
                                grid_index=fg)["method"] == "finite_difference"
    # a grid index whose positions do not follow the values is not used for differences
    bad = fg[:, [0, 2, 1]]  # alpha and r positions swapped
    res = sensitivity_analysis(control_embeddings(ft)["theta"], ft, grid_index=bad)
    assert res["method"] == "regression" and "also changes" in res["note"]


def test_user_scales_change_the_geometry(factorial):
    """An embedding linear in f1 (Hz) is exactly linear on the linear scale only."""
    theta, grid = factorial
    u = (theta - theta.mean(0)) / theta.std(0)
    lin = sensitivity_analysis(u, theta, grid_index=grid, scales={"f1_hz": "linear"})
    np.testing.assert_allclose(lin["sensitivity"], 1 / np.sqrt(3), rtol=1e-9)
    log = sensitivity_analysis(u, theta, grid_index=grid)  # default: log f1
    assert abs(log["sensitivity"][0] - 1 / np.sqrt(3)) > 0.005
    with pytest.raises(ParameterError, match="alpha"):
        sensitivity_analysis(u, theta, scales={"alpha": "log"})  # alpha = 0 in the grid


# ----------------------------------------------------------------------------------------------
# controls through the full pipeline
# ----------------------------------------------------------------------------------------------
def _v(res, metric, parameter=""):
    return res.value(metric, parameter)


@pytest.mark.slow
def test_probe_controls(paper_results):
    R = paper_results
    for name in ("theta", "linear512"):
        for p in NAMES:
            assert _v(R[name], "probe_r2_ridge", p) > 0.99
            assert _v(R[name], "probe_r2_mlp", p) > 0.95
    # invariant to r: r probes at chance, others perfect
    assert _v(R["drop_r"], "probe_r2_ridge", "r") < 0.05
    assert abs(_v(R["drop_r"], "probe_r2_ridge", "r") - _v(R["drop_r"], "probe_r2_chance", "r")) < 0.1
    assert _v(R["drop_r"], "probe_r2_mlp", "r") < 0.05
    for p in ("f1_hz", "alpha"):
        assert _v(R["drop_r"], "probe_r2_ridge", p) > 0.99
    # f1-only curve
    assert _v(R["curve_f1"], "probe_r2_mlp", "f1_hz") > 0.95
    for p in ("alpha", "r"):
        assert _v(R["curve_f1"], "probe_r2_ridge", p) < 0.05
    # shuffled: chance (<= ~0) everywhere, below theta
    for p in NAMES:
        for probe in ("ridge", "mlp"):
            assert _v(R["shuffled"], f"probe_r2_{probe}", p) < 0.05
        assert _v(R["shuffled"], "probe_r2_chance", p) <= 0.0
    # two octaves folded onto one circle: f1 is not recoverable, alpha and r are
    assert _v(R["octave_loop"], "probe_r2_ridge", "f1_hz") < 0.2
    for p in ("alpha", "r"):
        assert _v(R["octave_loop"], "probe_r2_ridge", p) > 0.99


@pytest.mark.slow
def test_score_and_sensitivity_rank_the_controls(paper_results):
    R = paper_results
    score = {k: _v(r, "disentanglement_score") for k, r in R.items()}
    assert score["theta"] == pytest.approx(1.0, abs=1e-9)
    assert score["theta"] >= score["linear512"] > 0.95
    assert score["linear512"] > score["octave_loop"] > score["shuffled"]
    assert score["drop_r"] == 0.0 and score["curve_f1"] == 0.0
    assert score["shuffled"] < 0.2
    assert _v(R["drop_r"], "sensitivity", "r") < 1e-6
    for p in ("alpha", "r"):
        assert _v(R["curve_f1"], "sensitivity", p) < 1e-6


@pytest.mark.slow
def test_intrinsic_dimension_and_faithfulness_controls(paper_results):
    R = paper_results
    assert _v(R["theta"], "intrinsic_dimension") == 3
    assert _v(R["linear512"], "intrinsic_dimension") == 3
    assert _v(R["drop_r"], "intrinsic_dimension") == 2
    assert _v(R["curve_f1"], "intrinsic_dimension") == 1
    assert _v(R["curve_f1"], "isomap_residual_variance_1") < 0.01
    assert _v(R["theta"], "isomap_residual_variance_3") < 0.01
    assert _v(R["theta"], "isomap_residual_variance_2") > 0.2
    for name in ("theta", "linear512"):
        assert _v(R[name], "trustworthiness") > 0.999
        assert _v(R[name], "continuity") > 0.999
    assert _v(R["shuffled"], "trustworthiness") == pytest.approx(0.5, abs=0.03)
    assert _v(R["shuffled"], "continuity") == pytest.approx(0.5, abs=0.03)
    # dropping r merges sounds that differ in r: false neighbours, not torn ones
    assert _v(R["drop_r"], "trustworthiness") < 0.9 < _v(R["drop_r"], "continuity")


@pytest.mark.slow
def test_topology_controls(paper_results):
    R = paper_results
    for name in ("theta", "linear512", "drop_r", "shuffled"):
        assert [_v(R[name], f"betti_{k}") for k in range(3)] == [1, 0, 0], name
        assert _v(R[name], "topology_extra_features") == 0
    loop = R["octave_loop"]
    assert [_v(loop, f"betti_{k}") for k in range(3)] == [1, 1, 0]
    assert _v(loop, "topology_extra_features") == 1
    assert _v(loop, "max_persistence_1") > 2 * _v(R["theta"], "max_persistence_1")


def test_octave_loop_on_a_semitone_factorial_grid():
    theta, _ = control_theta("factorial", n_f1=25, n_alpha=6, n_r=6)
    emb = control_embeddings(theta)["octave_loop"]
    res = persistence_summary(emb, random_state=0)
    assert list(res["betti"]) == [1, 1, 0]
    assert res["extra_features"] == 1


def test_separate_clusters_are_extra_components():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(200, 3))
    X = np.vstack([a, a[:150] + [10.0, 0, 0]])
    res = persistence_summary(X, n_landmarks=150, random_state=0)
    assert res["betti"][0] == 2 and res["extra_features"] == 1
    with pytest.warns(UserWarning, match="2 connected components"):
        iso = isomap_residual_variance(X, n_neighbors=100)
    assert iso["n_graph_components"] == 2


def test_mst_matches_scipy():
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform

    X = np.random.default_rng(2).standard_normal((120, 4))
    D = squareform(pdist(X))
    ref = np.sort(minimum_spanning_tree(D).data)
    np.testing.assert_allclose(np.sort(_mst_edges(D)), ref, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Isomap and trustworthiness against scikit-learn
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_residual_variance_matches_sklearn_isomap():
    from scipy.spatial.distance import pdist
    from sklearn.manifold import Isomap

    rng = np.random.default_rng(4)
    t = rng.uniform(0, 3 * np.pi, 300)
    X = np.c_[t * np.cos(t), rng.uniform(0, 25, 300), t * np.sin(t)]  # a swiss roll
    res = isomap_residual_variance(X, n_neighbors=10, random_state=0)
    iso = Isomap(n_neighbors=10, n_components=5).fit(X)
    iu = np.triu_indices(300, 1)
    geo = iso.dist_matrix_[iu]
    ref = [1 - np.corrcoef(geo, pdist(iso.embedding_[:, :k]))[0, 1] ** 2 for k in range(1, 6)]
    np.testing.assert_allclose(res["residual_variance"], ref, atol=1e-6)
    # a bent sheet (half cylinder) is unrolled into 2-D: RV(2) ~ 0, RV(1) is not
    t, h = rng.uniform(0, np.pi, 400), rng.uniform(0, 2, 400)
    sheet = isomap_residual_variance(np.c_[np.cos(t), np.sin(t), h], n_neighbors=12)
    assert sheet["intrinsic_dimension"] == 2
    assert sheet["residual_variance"][1] < 0.02 < 0.2 < sheet["residual_variance"][0]


@pytest.mark.slow
def test_landmark_isomap_is_close_to_exact(paper):
    theta, _ = paper
    emb = control_embeddings(theta)["linear512"]
    exact = isomap_residual_variance(emb)["residual_variance"]
    approx = isomap_residual_variance(emb, n_landmarks=300)["residual_variance"]
    np.testing.assert_allclose(approx, exact, atol=0.05)


def test_intrinsic_dimension_rule():
    assert intrinsic_dimension([0.7, 0.4, 0.01, 0.0, 0.0]) == 3
    assert intrinsic_dimension([0.5, 0.2, 0.12, 0.09, 0.08]) == 3
    assert intrinsic_dimension([0.01, 0.0, 0.0, 0.0, 0.0]) == 1
    assert intrinsic_dimension([0.9, 0.8, 0.7, 0.6, 0.5]) == 5
    with pytest.raises(ParameterError):
        intrinsic_dimension([])


def test_trustworthiness_matches_sklearn_without_ties():
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(7)
    theta = np.c_[110 * 2 ** rng.uniform(0, 2, 300), rng.uniform(0, 2, 300), rng.uniform(size=300)]
    z = _zscore(theta)
    emb = np.tanh(z @ rng.standard_normal((3, 8))) + 0.3 * rng.standard_normal((300, 8))
    res = trustworthiness_continuity(emb, theta, n_neighbors=7)
    assert res["trustworthiness"] == pytest.approx(trustworthiness(z, emb, n_neighbors=7), abs=1e-12)
    assert res["continuity"] == pytest.approx(trustworthiness(emb, z, n_neighbors=7), abs=1e-12)


def test_trustworthiness_ignores_ties_on_a_grid(factorial):
    """A rotation keeps every distance (up to rounding), so neighbourhoods are preserved even
    though a grid has many tied distances whose order rounding scrambles."""
    theta, _ = factorial
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    emb = control_embeddings(theta)["theta"] @ Q
    res = trustworthiness_continuity(emb, theta)
    assert res["trustworthiness"] == pytest.approx(1.0, abs=1e-12)
    assert res["continuity"] == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------------------------
# probes: folds and PCA
# ----------------------------------------------------------------------------------------------
def test_probe_folds_keep_theta_neighbours_together(factorial, paper):
    """On a factorial grid, theta-space neighbours are grid neighbours: grouped folds must put
    far fewer of them on opposite sides of a split than a random split does."""
    theta, grid = factorial
    folds = probe_folds(theta, grid_index=grid, n_folds=5, n_blocks=4, random_state=3)
    assert set(np.unique(folds)) == set(range(5))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() < 0.15 * theta.shape[0]
    np.testing.assert_array_equal(
        folds, probe_folds(theta, grid_index=grid, n_folds=5, n_blocks=4, random_state=3))
    lookup = {tuple(c): i for i, c in enumerate(grid)}
    pairs = [(i, lookup[tuple(c + e)]) for i, c in enumerate(grid) for e in np.eye(3, dtype=int)
             if tuple(c + e) in lookup]
    split = np.mean([folds[a] != folds[b] for a, b in pairs])
    random_folds = np.random.default_rng(0).integers(0, 5, theta.shape[0])
    split_random = np.mean([random_folds[a] != random_folds[b] for a, b in pairs])
    assert split_random > 0.75 and split < 0.45
    # equal values share a block: on the paper set no fold splits a (alpha, r) grid run whose
    # sounds also share an f1 quartile... checked through the contiguity of every axis' blocks
    from gear.disentangle.probes import _axis_blocks

    values = np.repeat(np.arange(10.0), np.arange(1, 11))  # unequal counts, many ties
    blocks = _axis_blocks(values, 4)
    assert np.all(np.diff(blocks) >= 0)  # contiguous, in value order
    for v in np.unique(values):
        assert np.unique(blocks[values == v]).size == 1
    assert set(blocks) == {0, 1, 2, 3}


@pytest.mark.slow
def test_principal_scores_match_numpy_svd():
    rng = np.random.default_rng(0)
    for shape in [(200, 30), (150, 700)]:
        X = rng.standard_normal(shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
        S = principal_scores(X, 10)
        Xc = X - X.mean(0)
        U, s, _ = np.linalg.svd(Xc, full_matrices=False)
        np.testing.assert_allclose(np.abs(S), np.abs(U[:, :10] * s[:10]), atol=1e-8)
    # randomized path (Gram larger than 512): leading components accurate
    X = rng.standard_normal((600, 900)) @ np.diag(np.geomspace(10, 0.1, 900))
    S = principal_scores(X, 20, random_state=1)
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(S, axis=0)[:5], s[:5], rtol=1e-4)


def test_probe_r2_without_mlp_is_fast_and_perfect_on_theta(factorial):
    theta, grid = factorial
    res = probe_r2(control_embeddings(theta)["theta"], theta, grid_index=grid, mlp=False)
    assert "mlp" not in res
    np.testing.assert_allclose(res["ridge"], 1.0, atol=1e-3)
    assert np.all(res["chance"] <= 0)


# ----------------------------------------------------------------------------------------------
# top-level API, determinism, CSV, card
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    theta, grid = control_theta("paper", n_alpha=12, n_r=12, random_state=4)
    rng = np.random.default_rng(0)
    z = _zscore(theta)
    emb = np.tanh(z @ rng.standard_normal((3, 40))) + 0.05 * rng.standard_normal((144, 40))
    return emb, theta, grid


@pytest.mark.slow
def test_rows_format_and_determinism(small):
    emb, theta, grid = small
    kw = dict(grid_index=grid, isomap_neighbors=20, topology_landmarks=100)
    rows = disentanglement_metrics(emb, theta, random_state=7, **kw)
    again = disentanglement_metrics(emb, theta, random_state=7, **kw)
    assert [repr(sorted(r.items())) for r in rows] == [repr(sorted(r.items())) for r in again]
    metrics = {r["metric"] for r in rows}
    for m in ("probe_r2_ridge", "probe_r2_mlp", "probe_r2_chance", "sensitivity", "overlap",
              "orthogonality", "sensitivity_balance", "disentanglement_score",
              "isomap_residual_variance_1", "isomap_residual_variance_5",
              "intrinsic_dimension", "isomap_graph_components", "trustworthiness",
              "continuity", "betti_0", "betti_1", "betti_2", "max_persistence_2",
              "topology_extra_features"):
        assert m in metrics
    extended = {"metric", "parameter", "value", "ci_low", "ci_high", "note"}
    assert {"normalised_score", "dci_disentanglement", "mig", "sap", "silhouette"} <= metrics
    for r in rows:
        assert set(r) in ({"metric", "parameter", "value"}, extended) and isinstance(r["value"], float)
        if set(r) == extended:
            assert r["parameter"] in NAMES + ("all",)
            assert math.isfinite(r["value"]) or r["note"]
        elif r["metric"].startswith(("probe", "sensitivity")) and r["metric"] != "sensitivity_balance":
            assert r["parameter"] in NAMES
        elif r["metric"] == "overlap":
            assert r["parameter"] in ("f1_hz:alpha", "f1_hz:r", "alpha:r")
        else:
            assert r["parameter"] == ""


def test_csv_is_written_atomically_and_reads_back(small, tmp_path):
    emb, theta, grid = small
    res = compute_disentanglement(emb, theta, grid_index=grid, isomap_neighbors=20,
                                  topology_landmarks=100, mlp=False)
    rows = res.rows
    path = write_disentanglement_csv(tmp_path / "disentanglement.csv", {"a": res, "b": rows})
    assert os.listdir(tmp_path) == ["disentanglement.csv"]
    with open(path, newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert tuple(recs[0].keys()) == DISENTANGLEMENT_COLUMNS
    assert len(recs) == 2 * len(rows)
    back = read_disentanglement_csv(path)
    assert list(back) == ["a", "b"]
    for got, want in zip(back["a"], rows):
        assert got["metric"] == want["metric"] and got["parameter"] == want["parameter"]
        assert got["value"] == want["value"] or (math.isnan(got["value"]) and math.isnan(want["value"]))
    table = pivot_metrics(back)
    assert table["a"]["probe_r2_ridge[f1_hz]"] == res.value("probe_r2_ridge", "f1_hz")
    before = path.read_text()
    with pytest.raises(ParameterError):
        write_disentanglement_csv(path, {"c": [{"metric": "x"}]})
    assert path.read_text() == before
    with pytest.raises(ParameterError, match="does not exist"):
        write_disentanglement_csv(tmp_path / "missing" / "d.csv", {"a": rows})


def test_card_figures_and_html(small):
    import plotly.graph_objects as go

    emb, theta, grid = small
    res = compute_disentanglement(emb, theta, grid_index=grid, isomap_neighbors=20,
                                  topology_landmarks=100, mlp=False)
    figs = disentanglement_card(res, model="toy <model>")
    assert list(figs) == ["sensitivity", "probes", "residual_variance", "barcode"]
    assert all(isinstance(f, go.Figure) for f in figs.values())
    heat = [t for t in figs["sensitivity"].data if t.type == "heatmap"][0]
    np.testing.assert_allclose(np.nan_to_num(np.array(heat.z, dtype=float)),
                               np.nan_to_num(res.sensitivity["overlap"] * (1 - np.eye(3))))
    bars = {t.name: np.array(t.y) for t in figs["probes"].data}
    np.testing.assert_allclose(bars["ridge"], res.probes["ridge"])
    np.testing.assert_allclose(figs["residual_variance"].data[0].y,
                               res.isomap["residual_variance"])
    html = disentanglement_card_html(res, model="toy <model>")
    assert "<html" not in html and "toy &lt;model&gt;" in html
    assert 'id="gear-disentangle-toy-model-barcode"' in html
    assert len(html) < 200_000  # plotly.js itself is not embedded
    with pytest.raises(ParameterError):
        disentanglement_card(res.rows)


# ----------------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------------
def _base():
    theta, grid = control_theta("paper", n_alpha=6, n_r=6)
    return control_embeddings(theta)["theta"], theta, grid


@pytest.mark.parametrize("mutate,match", [
    (lambda e, t, g: dict(embedding=e[:, 0]), "embedding must be 2-D"),
    (lambda e, t, g: dict(embedding=np.where(np.arange(e.size).reshape(e.shape) == 4, np.nan, e)),
     "NaN or Inf"),
    (lambda e, t, g: dict(theta=t[:-1]), "36 sounds but theta has 35"),
    (lambda e, t, g: dict(embedding=e[:10], theta=t[:10]), "at least 20 sounds"),
    (lambda e, t, g: dict(param_names=("f1_hz", "alpha")), "param_names"),
    (lambda e, t, g: dict(param_names=("f1_hz", "alpha", "alpha")), "duplicates"),
    (lambda e, t, g: dict(scales={"pitch": "log"}), "unknown parameter 'pitch'"),
    (lambda e, t, g: dict(scales={"alpha": "mel"}), "choose 'linear' or 'log'"),
    (lambda e, t, g: dict(scales={"r": "log"}), "r > 0"),
    (lambda e, t, g: dict(grid_index=g[:, :2]), "grid_index has shape"),
    (lambda e, t, g: dict(grid_index=np.where(np.arange(36)[:, None] == 0, -1, g)), "mixes -1"),
    (lambda e, t, g: dict(grid_index=g - 5), "values < -1"),
    (lambda e, t, g: dict(theta=np.c_[t[:, :2], np.ones(36)]), "'r' is constant"),
    (lambda e, t, g: dict(embedding=np.ones_like(e)), "zero spread"),
    (lambda e, t, g: dict(random_state="seed"), "random_state"),
])
def test_bad_inputs_raise_parameter_error(mutate, match):
    emb, theta, grid = _base()
    kw = dict(embedding=emb, theta=theta, grid_index=grid)
    kw.update(mutate(emb, theta, grid))
    with pytest.raises(ParameterError, match=match):
        disentanglement_metrics(kw.pop("embedding"), kw.pop("theta"), **kw)


@pytest.mark.parametrize("kw,match", [
    (dict(sensitivity_method="exact"), "choose one of"),
    (dict(jacobian_neighbors=3), "jacobian_neighbors=3"),
    (dict(trust_neighbors=30), "trust_neighbors"),
    (dict(persistence_threshold=1.5), "persistence_threshold"),
    (dict(n_folds=1), "n_folds"),
    (dict(isomap_landmarks=2), "isomap_landmarks"),
])
def test_bad_options_raise_parameter_error(kw, match):
    emb, theta, grid = _base()
    with pytest.raises(ParameterError, match=match):
        disentanglement_metrics(emb, theta, grid_index=grid, isomap_neighbors=10,
                                topology_landmarks=20, **kw)


def test_result_type():
    emb, theta, grid = _base()
    res = compute_disentanglement(emb, theta, grid_index=grid, isomap_neighbors=10,
                                  topology_landmarks=20, mlp=False)
    assert isinstance(res, DisentanglementResult)
    assert res.settings["sensitivity_method"] == "regression"
    assert set(res.timings_s) >= {"probes", "sensitivity", "isomap", "topology", "total"}
    with pytest.raises(KeyError):
        res.value("nope")
