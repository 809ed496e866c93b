"""Tests of gear.metrics: controls with known answers, hand-computed cases, brute force."""
import itertools
import math

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from gear.disentangle import control_theta
from gear.metrics import (CAUSE_FACTORS, EXPLANATIONS, METRICS, evaluate, make_design,
                          mean_normalised_score)
from gear.metrics.clusters import cluster_rows
from gear.metrics.neighbours import abs_log_ratios, neighbour_count, neighbour_rows
from gear.metrics.similarity import debiased_cka, linear_cka, rsa, similarity_rows
from gear.metrics.standard import (dci_from_importance, mig_from_information,
                                   modularity_from_information, sap_from_scores, standard_rows)
from gear.metrics.sweeps import (explicit_sweeps, grid_sweeps, harmonic_sweeps, sweep_correlations,
                                 sweep_rows, sweep_tone_set)


def _values(rows, metric):
    return {r["parameter"]: r["value"] for r in rows if r["metric"] == metric}


@pytest.fixture(scope="module")
def paper():
    """Paper-like factors: 30 x 30 alpha-r grid, f1 drawn at random (continuous)."""
    return control_theta("paper", n_alpha=30, n_r=30, random_state=0)


@pytest.fixture(scope="module")
def z(paper):
    return make_design(np.zeros((paper[0].shape[0], 1)), paper[0], names=CAUSE_FACTORS).z()


def _embed(z, matrix, *, dim=64, noise=0.01, seed=0):
    """z @ matrix placed in ``dim`` dimensions by a random orthonormal map, plus noise."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((dim, z.shape[1])))[0].T
    return (z @ matrix) @ Q + noise * rng.standard_normal((z.shape[0], dim))


# ---------------------------------------------------------------- normalised neighbour scores
def test_abs_log_ratios_match_a_loop():
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 2.0, 30)
    values[3] = 0.0
    nbrs = rng.integers(0, 30, (30, 4))
    for scale in ("linear", "log"):
        v = np.where(values > 0, values, 1.0) if scale == "log" else values
        got = abs_log_ratios(v, nbrs, scale)
        for i in range(30):
            if scale == "linear":
                want = np.nan if v[i] == 0 else abs(math.log(np.mean(v[nbrs[i]]) / v[i]))
            else:
                want = abs(np.mean(np.log(v[nbrs[i]])) - math.log(v[i]))
            assert (np.isnan(got[i]) and np.isnan(want)) or got[i] == pytest.approx(want)


def test_normalised_score_is_zero_for_the_factors_and_one_when_shuffled(paper, z):
    theta, _ = paper
    exact = neighbour_rows(make_design(z, theta, names=CAUSE_FACTORS), n_resamples=200)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in _values(exact, "normalised_score").values())
    shuffled = z[np.random.default_rng(1).permutation(len(z))]
    rows = neighbour_rows(make_design(shuffled, theta, names=CAUSE_FACTORS), n_resamples=200)
    for r in rows:
        if r["metric"] == "normalised_score":
            assert abs(r["value"] - 1.0) < 0.08 and r["ci_low"] < r["value"] < r["ci_high"]


def test_neighbour_count_follows_the_design():
    assert neighbour_count(2500) == 40 and neighbour_count(10000) == 160 and neighbour_count(30) == 1


def test_normalised_score_is_stable_across_grid_density():
    """A smooth embedding that blurs alpha and r: the same normalised score at 20 x 20 and
    40 x 40 (K follows the density), while the raw mean error changes."""
    out = {}
    for n in (20, 40):
        theta, _ = control_theta("paper", n_alpha=n, n_r=n, random_state=0)
        z = make_design(theta[:, :1], theta, names=CAUSE_FACTORS).z()
        emb = np.column_stack([z[:, 0] * 3, np.tanh(z[:, 1]), 0.5 * z[:, 2] + 0.3 * z[:, 1] ** 2])
        out[n] = neighbour_rows(make_design(emb, theta, names=CAUSE_FACTORS), n_resamples=100)
    for factor in ("alpha", "r"):
        a, b = (_values(out[n], "normalised_score")[factor] for n in (20, 40))
        assert abs(a - b) < 0.05, (factor, a, b)


def test_purity_and_its_chance_level():
    theta, _ = control_theta("factorial", n_f1=5, n_alpha=6, n_r=6)
    z = make_design(theta[:, :1], theta, names=CAUSE_FACTORS).z()
    design = make_design(z, theta, names=CAUSE_FACTORS)
    rows = neighbour_rows(design, n_neighbors=5, n_resamples=100)
    chance = _values(rows, "purity_chance")
    # brute force: the share of ordered pairs of distinct sounds with the same value
    same = theta[:, 0][:, None] == theta[:, 0][None, :]
    assert chance["f1_hz"] == pytest.approx((same.sum() - len(theta)) / (len(theta) * (len(theta) - 1)))
    assert set(chance) == {"f1_hz", "alpha", "r"}  # 5 and 6 values: discrete
    assert _values(rows, "purity")["f1_hz"] > chance["f1_hz"]


def test_constant_factor_and_mean_normalised_score(paper, z):
    theta = paper[0].copy()
    theta[:, 2] = 0.5
    rows = neighbour_rows(make_design(z[:, :2], theta, names=CAUSE_FACTORS), n_resamples=50)
    r_rows = [r for r in rows if r["parameter"] == "r"]
    assert r_rows and all(math.isnan(r["value"]) and "constant" in r["note"] for r in r_rows)
    assert math.isnan(mean_normalised_score(rows))
    assert mean_normalised_score(rows, ("f1_hz", "alpha")) == pytest.approx(
        np.mean([_values(rows, "normalised_score")[f] for f in ("f1_hz", "alpha")]))


# ---------------------------------------------------------------- DCI, MIG, SAP, modularity
def test_dci_hand_cases():
    assert dci_from_importance(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert dci_from_importance(np.ones((3, 3))) == pytest.approx((0.0, 0.0))
    # one code serves both factors equally, the other only factor 0 (weight 1/3):
    # D = 2/3 * (1 - H2(1/2, 1/2)) + 1/3 * 1 = 1/3; completeness of factor 0: P = (1/2, 1/2) -> 0,
    # of factor 1: P = (1, 0) -> 1; C = 1/2
    R = np.array([[1.0, 1.0], [1.0, 0.0]])
    assert dci_from_importance(R) == pytest.approx((1 / 3, 0.5))
    d, c = dci_from_importance(np.ones((3, 1)))
    assert math.isnan(d) and c == pytest.approx(0.0)


def test_mig_sap_modularity_hand_cases():
    M = np.array([[1.0, 0.0], [0.2, 0.5], [0.0, 0.1]])
    # factor 0: gap 1 - 0.2 over H = 2 -> 0.4; factor 1: (0.5 - 0.1) / 1 -> 0.4
    assert mig_from_information(M, [2.0, 1.0]) == pytest.approx(0.4)
    assert sap_from_scores(M) == pytest.approx(((1 - 0.2) + (0.5 - 0.1)) / 2)
    # Ridgeway & Mozer: code 1 = (0.2, 0.5) -> delta = 0.2^2 / 0.5^2 = 0.16; codes 0 and 2: 0
    assert modularity_from_information(M, weighted=False) == pytest.approx(1 - 0.16 / 3)
    assert modularity_from_information(M) == pytest.approx((1.0 + 0.5 * 0.84 + 0.1) / 1.6)


@pytest.fixture(scope="module")
def small():
    """A 20 x 20 paper-like design (400 sounds) and its standardised factors."""
    theta, grid = control_theta("paper", n_alpha=20, n_r=20, random_state=0)
    return theta, make_design(theta[:, :1], theta, names=CAUSE_FACTORS).z()


@pytest.fixture(scope="module")
def controls(small):
    z = small[1]
    rotation = special_ortho_group.rvs(3, random_state=1)
    mixing = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    scaling = np.diag([3.0, 2.0, 1.0])
    shuffled = z[np.random.default_rng(2).permutation(len(z))]
    return {"axes": _embed(z, scaling), "rotated": _embed(z, rotation @ scaling),
            "mixed": _embed(z, mixing), "shuffled": _embed(shuffled, scaling)}


@pytest.mark.parametrize("k", [3, 10])
def test_standard_metric_controls_are_stable_in_k(small, controls, k):
    theta = small[0]
    got = {name: {r["metric"]: r["value"] for r in standard_rows(
        make_design(X, theta, names=CAUSE_FACTORS), n_components=k)} for name, X in controls.items()}
    axes, rot, mixed, shuf = got["axes"], got["rotated"], got["mixed"], got["shuffled"]
    assert axes["dci_disentanglement"] > 0.9 and axes["sap"] > 0.9 and axes["dci_informativeness"] > 0.95
    for entangled in (rot, mixed):  # low D, high I
        assert entangled["dci_disentanglement"] < 0.5 and entangled["dci_informativeness"] > 0.9
        for m in ("dci_disentanglement", "mig", "sap", "modularity"):
            assert entangled[m] < axes[m] - 0.2, m
    assert shuf["dci_informativeness"] < 0.05 and abs(shuf["explicitness"] - 0.5) < 0.05
    assert shuf["mig"] < 0.02 and shuf["sap"] < 0.02


def test_standard_metrics_notes_instead_of_errors(paper):
    theta = paper[0][:, :1]
    rows = standard_rows(make_design(np.log(theta) + 0.0, theta, names=("f1_hz",)))
    by = {r["metric"]: r for r in rows}
    assert math.isnan(by["dci_disentanglement"]["value"]) and "2 varying factors" in by["dci_disentanglement"]["note"]
    assert "2 code dimensions" in by["mig"]["note"] and "2 varying factors" in by["modularity"]["note"]
    assert by["dci_informativeness"]["value"] > 0.95


# ---------------------------------------------------------------- clusters and sweeps
def test_cluster_scores_against_sklearn_and_chance():
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    theta, _ = control_theta("factorial", n_f1=4, n_alpha=5, n_r=5)
    rng = np.random.default_rng(0)
    X = np.column_stack([np.log(theta[:, 0]) * 10, rng.standard_normal(len(theta))])
    rows = cluster_rows(make_design(X, theta, names=CAUSE_FACTORS))
    labels = np.unique(theta[:, 0], return_inverse=True)[1]
    assert _values(rows, "davies_bouldin")["f1_hz"] == pytest.approx(davies_bouldin_score(X, labels))
    assert _values(rows, "silhouette")["f1_hz"] == pytest.approx(silhouette_score(X, labels))
    assert _values(rows, "silhouette")["f1_hz"] > 0.5 > abs(_values(rows, "silhouette_chance")["f1_hz"])
    one = theta.copy()
    one[:, 1] = 1.0
    notes = [r["note"] for r in cluster_rows(make_design(X, one, names=CAUSE_FACTORS)) if r["parameter"] == "alpha"]
    assert notes and all("1 distinct value" in n for n in notes)


def test_sweeps_known_answers():
    sweeps = harmonic_sweeps(n_sweeps=4, n_steps=6)
    theta = np.column_stack([sweeps["f1_hz"], sweeps["alpha"], sweeps["r"]])
    z = make_design(theta[:, :1], theta, names=CAUSE_FACTORS).z()
    explicit = explicit_sweeps(sweeps)
    assert np.allclose(sweep_tone_set(sweeps).theta(), theta)
    rows = sweep_rows(make_design(z, theta, names=CAUSE_FACTORS), sweeps=explicit)
    assert all(v == pytest.approx(1.0) for v in _values(rows, "sweep_spearman").values())
    blind = np.column_stack([z[:, 0], z[:, 0] ** 2])  # f1 only: alpha and r sweeps are flat
    blind += 1e-3 * np.random.default_rng(0).standard_normal(blind.shape)
    rows = sweep_rows(make_design(blind, theta, names=CAUSE_FACTORS), sweeps=explicit)
    got = _values(rows, "sweep_spearman")
    assert got["f1_hz"] > 0.5 and abs(got["alpha"]) < 0.6
    # grid sweeps: one per line of the other axes; off-grid f1 gets a note
    theta_g, grid = control_theta("paper", n_alpha=5, n_r=4)
    sweep_id, step = grid_sweeps(grid, 1)
    assert np.unique(sweep_id).size == 4 and np.array_equal(step, grid[:, 1])
    z_g = make_design(theta_g[:, :1], theta_g, names=CAUSE_FACTORS).z()
    rows = sweep_rows(make_design(z_g, theta_g, names=CAUSE_FACTORS), grid_index=grid)
    assert "no grid axis" in [r for r in rows if r["parameter"] == "f1_hz"][0]["note"]
    assert sweep_correlations(z_g, sweep_id, step).size == 4


# ---------------------------------------------------------------- similarity
def test_cka_invariances_and_brute_force():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    Y = X @ rng.standard_normal((5, 7)) + 0.5 * rng.standard_normal((60, 7))
    Q = special_ortho_group.rvs(5, random_state=3)
    assert linear_cka(X, X) == pytest.approx(1.0) and debiased_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X @ Q * 3.7, Y) == pytest.approx(linear_cka(X, Y))
    assert debiased_cka(X @ Q * 3.7, Y) == pytest.approx(debiased_cka(X, Y))
    # brute force with explicit n x n matrices (Kornblith et al. 2019; Song et al. 2012)
    n = X.shape[0]
    H = np.eye(n) - 1.0 / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    assert linear_cka(X, Y) == pytest.approx(np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)))

    def hsic1(K, L):
        K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
        one = np.ones(n)
        return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))

    Kx, Ly = X @ X.T, Y @ Y.T
    assert debiased_cka(X, Y) == pytest.approx(hsic1(Kx, Ly) / np.sqrt(hsic1(Kx, Kx) * hsic1(Ly, Ly)))


def test_debiased_cka_of_independent_matrices_is_near_zero():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((300, 200)), rng.standard_normal((300, 200))
    assert abs(debiased_cka(X, Y)) < 0.02 < linear_cka(X, Y)  # linear CKA is biased upwards


def test_rsa_against_scipy_and_similarity_rows():
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3))
    Y = X ** 2 + 0.3 * rng.standard_normal((40, 3))
    assert rsa(X, Y) == pytest.approx(spearmanr(pdist(X), pdist(Y)).statistic)
    noise = {f"noise{i}": rng.standard_normal((40, 4)) for i in range(4)}
    rows = similarity_rows({"x": X, "y": Y, "x2": X @ special_ortho_group.rvs(3, random_state=0) * 2,
                            **noise}, n_permutations=49, rsa_sounds=40)
    assert len(rows) == 21 * 3
    by = {(r["model_a"], r["model_b"], r["metric"]): r for r in rows}
    for metric in ("linear_cka", "debiased_cka", "rsa"):
        assert by[("x", "x2", metric)]["value"] == pytest.approx(1.0)
        assert by[("x", "x2", metric)]["p_value"] == pytest.approx(1 / 50)
    # unrelated embeddings: p-values spread over (0, 1] (uniform under the null: mean 1/2)
    p_noise = [by[("x", name, m)]["p_value"] for name in noise for m in ("linear_cka", "debiased_cka", "rsa")]
    assert 0.25 < np.mean(p_noise) and min(by[("x", "y", m)]["p_value"] for m in ("linear_cka", "rsa")) == 1 / 50
    assert by[("x", "y", "rsa")]["value"] == pytest.approx(rsa(X, Y))


# ---------------------------------------------------------------- the table
def test_metric_table_drives_evaluate_and_every_metric_is_explained(paper, z):
    theta, grid = paper
    timings = {}
    rows = evaluate(z, theta, grid_index=grid, n_resamples=100, timings=timings)
    assert set(timings) == {f.name for f in METRICS}
    produced = {r["metric"] for r in rows}
    declared = set(itertools.chain.from_iterable(f.metrics for f in METRICS))
    assert produced <= declared
    for name in ("normalised_score", "mean_abs_log_ratio", "dci_disentanglement", "mig", "sap",
                 "modularity", "explicitness", "silhouette", "davies_bouldin", "sweep_spearman"):
        assert name in EXPLANATIONS
    for r in rows:
        assert math.isfinite(r["value"]) or r["note"], r
    assert evaluate(z, theta, families=["standard"])[0]["parameter"] == "all"


# ---------------------------------------------------------------- real models (slow)
@pytest.fixture(scope="module")
def paper_embeddings(tmp_path_factory):
    """naive, logmel and mfcc embeddings of the 50 x 50 paper grid (a few seconds each)."""
    import synth
    from embeddings import registry
    from gear.embedder import embed_model

    cache = tmp_path_factory.mktemp("cache")
    tone_set = synth.make_grid("paper")
    return tone_set, {name: embed_model(registry.get_spec(name), tone_set, cache_dir=cache).embedding
                      for name in ("naive", "logmel", "mfcc")}


@pytest.mark.slow
def test_f1_ties_are_broken_by_the_mean_and_the_normalised_score(paper_embeddings):
    from gear.analysis import score_embedding

    tone_set, embeddings = paper_embeddings
    theta = tone_set.theta()
    means, norms = {}, {}
    for name, X in embeddings.items():
        _, summary = score_embedding(X, {"f1_hz": theta[:, 0]}, scales={"f1_hz": "log"}, n_bootstrap=50)
        assert summary[0]["median_abs_log_ratio"] == 0.0  # the tie of issue 10
        rows = neighbour_rows(make_design(X, theta, names=CAUSE_FACTORS), n_resamples=200)
        f1 = {r["metric"]: r for r in rows if r["parameter"] == "f1_hz"}
        means[name], norms[name] = f1["mean_abs_log_ratio"], f1["normalised_score"]
    # logmel < mfcc < naive, with disjoint confidence intervals
    for better, worse in (("logmel", "mfcc"), ("mfcc", "naive")):
        for table in (means, norms):
            assert table[better]["ci_high"] < table[worse]["ci_low"], (better, worse)


@pytest.mark.slow
def test_logmel_normalised_scores_agree_on_a_grid_twice_as_dense(paper_embeddings, tmp_path):
    import synth
    from embeddings import registry
    from gear.embedder import embed_model

    tone_set, embeddings = paper_embeddings
    dense = synth.make_grid("paper", n_alpha=100, n_r=100)
    X_dense = embed_model(registry.get_spec("logmel"), dense, cache_dir=tmp_path).embedding
    scores = {}
    for key, X, ts in (("paper", embeddings["logmel"], tone_set), ("dense", X_dense, dense)):
        rows = neighbour_rows(make_design(X, ts.theta(), names=CAUSE_FACTORS), n_resamples=50)
        scores[key] = _values(rows, "normalised_score")
    for factor in ("alpha", "r"):
        assert abs(scores["paper"][factor] - scores["dense"][factor]) < 0.05, (factor, scores)


@pytest.mark.slow
def test_gear_score_writes_new_metrics_similarity_and_sections(tmp_path, fake_model):
    import csv

    from gear import pipeline
    from gear.scoring import disentanglement_sections, score_results

    config = pipeline.GearConfig(grid_kwargs=dict(n_alpha=12, n_r=12), isomap_neighbors=10,
                                 n_neighbors=5, n_bootstrap=20)
    pipeline.run(["fake"], out_dir=tmp_path, config=config, cache_dir=tmp_path / "c", report=False)
    scores_before = (tmp_path / "scores.csv").read_bytes()
    # a second entry: the fake model's embedding rotated and scaled, stored through the results store
    store = pipeline.open_store(tmp_path, report=False)
    X = store.load_embedding("fake")
    rotated = store.load_result("fake")
    rotated.name = "rotated"
    staged = store.stage("rotated", {"kind": "submission", "module": "<i>rotated"})
    staged.write_result(rotated, (X @ special_ortho_group.rvs(X.shape[1], random_state=0) * 2).astype(np.float32))
    store.commit(put=[staged])
    scores_before = (tmp_path / "scores.csv").read_bytes()
    rows = score_results(tmp_path)
    assert (tmp_path / "scores.csv").read_bytes() == scores_before
    with open(tmp_path / "disentanglement.csv", newline="") as fh:
        recs = list(csv.DictReader(fh))
    got = {(r["model"], r["metric"], r["parameter"]) for r in recs}
    for metric, parameter in (("normalised_score", "alpha"), ("oracle", "r"), ("chance", "f1_hz"),
                              ("mean_abs_log_ratio", "f1_hz"), ("purity", "f1_hz"),
                              ("dci_disentanglement", "all"), ("mig", "all"), ("sap", "all"),
                              ("modularity", "all"), ("explicitness", "all"), ("silhouette", "f1_hz"),
                              ("davies_bouldin", "f1_hz"), ("sweep_spearman", "alpha")):
        assert ("fake", metric, parameter) in got
    for r in recs:
        assert r["value"] != "" or r["note"], r
    assert mean_normalised_score(rows["fake"]) == pytest.approx(
        mean_normalised_score(rows["rotated"]))  # a rotation keeps every neighbour
    with open(tmp_path / "similarity.csv", newline="") as fh:
        sim = list(csv.DictReader(fh))
    assert tuple(sim[0]) == ("model_a", "model_b", "metric", "value", "p_value")
    assert {r["metric"] for r in sim} == {"linear_cka", "debiased_cka", "rsa"}
    assert all(float(r["value"]) == pytest.approx(1.0) for r in sim)
    per_model, extra = disentanglement_sections(tmp_path)
    titles = [t for t, _ in extra]
    assert titles == ["Disentanglement leaderboard", "Model similarity", "What the scores mean"]
    page = "".join(h for _, h in extra) + per_model["fake"][0][1]
    assert "rotated" in page
    assert "normalised_score" in page and "gear-similarity-linear_cka" in page
