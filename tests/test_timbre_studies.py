"""Tests of the timbre data loader, studies, zoo hook and command line.

A tiny study folder is built in tmp_path: its ratings are exact squared weighted distances
of one representation, so the exact solver must explain them fully (P^2 = 1) — an
independent answer — while another representation is unrelated noise.
"""
import argparse
import csv
import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest
import scipy.integrate
import soundfile as sf

from gear.errors import ParameterError
from gear.timbre import cli, data, studies
from gear.timbre.solver import MetricLearner, pair_differences

SR = 44100


def _write_study(root, name, n_sounds, rng, *, m_subjects=20):
    sounds = root / "sounds" / name
    sounds.mkdir(parents=True)
    for i in range(n_sounds):
        t = np.arange(int(SR * (0.15 + 0.01 * i))) / SR
        x = 0.5 * np.sin(2 * np.pi * (220 + 70 * i) * t) * np.exp(-t * (3 + i))
        sf.write(sounds / f"s{i:02d}.aiff", x, SR, format="AIFF", subtype="PCM_16")
    Fa = rng.standard_normal((n_sounds, 4))
    Fb = rng.standard_normal((n_sounds, 3))
    for rep, F in (("rep_a", Fa), ("rep_b", Fb)):
        (root / "features" / rep).mkdir(parents=True, exist_ok=True)
        np.savez(root / "features" / rep / f"{name}.npz", features=F)
    d2 = pair_differences(Fa) @ np.array([1.0, 0.0, 0.3, 2.0])
    s = 0.05 + 0.9 * (d2 - d2.min()) / np.ptp(d2)
    M = np.zeros((n_sounds, n_sounds))
    M[np.triu_indices(n_sounds, 1)] = s
    (root / "ratings").mkdir(exist_ok=True)
    np.savetxt(root / "ratings" / f"{name}_dissimilarity_matrix.txt", M, fmt="%.15f", delimiter="\t")
    return M


@pytest.fixture
def tiny(tmp_path):
    root = tmp_path / "timbre"
    rng = np.random.default_rng(0)
    _write_study(root, "StudyA", 6, rng)
    _write_study(root, "StudyB", 5, rng)
    (root / "studies.csv").write_text("study,n_sounds,m_subjects\nStudyB,5,9\nStudyA,6,25\n")
    return root


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------- data


def test_load_study(tiny, monkeypatch):
    st = data.load_study("StudyA", data_dir=tiny)
    assert st.n_sounds == 6 and st.n_pairs == 15
    assert [p.name for p in st.sound_paths] == [f"s{i:02d}.aiff" for i in range(6)]
    assert st.m_subjects == 25 and st.delta_bar == pytest.approx(0.5)
    assert np.all(np.tril(st.ratings_matrix) == 0)
    assert data.list_studies(tiny) == ["StudyB", "StudyA"]  # studies.csv order
    assert data.list_representations(tiny) == ["rep_a", "rep_b"]
    assert data.load_features("StudyB", "rep_b", data_dir=tiny).shape == (5, 3)
    audio = data.load_audio(st)
    assert len(audio) == 6 and audio[0][1] == SR and audio[0][0].shape == (int(SR * 0.15),)
    monkeypatch.setenv("GEAR_SHARED_DIR", str(tiny.parent))
    assert data.default_data_dir() == tiny
    assert data.load_study("StudyB").n_sounds == 5


def _ratings_path(root, name="StudyA"):
    return root / "ratings" / f"{name}_dissimilarity_matrix.txt"


def test_non_square_matrix(tiny):
    M = np.loadtxt(_ratings_path(tiny))
    np.savetxt(_ratings_path(tiny), M[:, :5])
    with pytest.raises(ParameterError, match=r"6 x 5.*square"):
        data.load_study("StudyA", data_dir=tiny)


def test_ratings_outside_unit_interval(tiny):
    M = np.loadtxt(_ratings_path(tiny))
    M[1, 3] = 1.7
    np.savetxt(_ratings_path(tiny), M)
    with pytest.raises(ParameterError, match=r"\(1, 3\) = 1.7 is outside \[0, 1\]"):
        data.load_study("StudyA", data_dir=tiny)


def test_ratings_with_nan_and_bad_text(tiny):
    M = np.loadtxt(_ratings_path(tiny))
    M[0, 2] = np.nan
    np.savetxt(_ratings_path(tiny), M)
    with pytest.raises(ParameterError, match="nan.*NaN"):
        data.load_study("StudyA", data_dir=tiny)
    _ratings_path(tiny).write_text("0 0.5 x\n0 0 0.2\n0 0 0\n")
    with pytest.raises(ParameterError, match="numeric matrix"):
        data.load_study("StudyA", data_dir=tiny)
    _ratings_path(tiny).write_text("0 0.5 0.1\n0 0\n0 0 0\n")
    with pytest.raises(ParameterError, match="different lengths"):
        data.load_study("StudyA", data_dir=tiny)


def test_asymmetric_lower_triangle(tiny):
    M = np.loadtxt(_ratings_path(tiny))
    M[4, 1] = 0.3
    np.savetxt(_ratings_path(tiny), M)
    with pytest.raises(ParameterError, match="below the diagonal"):
        data.load_study("StudyA", data_dir=tiny)
    # a symmetric matrix is accepted and gives the same ratings
    M[4, 1] = 0.0
    np.savetxt(_ratings_path(tiny), M + M.T)
    assert np.allclose(data.load_study("StudyA", data_dir=tiny).ratings_matrix, np.triu(M, 1))


def test_count_mismatch(tiny):
    (tiny / "sounds" / "StudyA" / "s03.aiff").unlink()
    with pytest.raises(ParameterError, match=r"6 x 6 but .*StudyA holds 5 sound files"):
        data.load_study("StudyA", data_dir=tiny)


def test_unreadable_audio(tiny):
    (tiny / "sounds" / "StudyA" / "s02.aiff").write_bytes(b"not audio at all" * 10)
    with pytest.raises(ParameterError, match=r"cannot read audio file .*s02\.aiff"):
        data.load_study("StudyA", data_dir=tiny)


def test_feature_rows_mismatch_and_missing(tiny):
    np.savez(tiny / "features" / "rep_a" / "StudyA.npz", features=np.ones((5, 4)))
    with pytest.raises(ParameterError, match="study StudyA: feature file .*StudyA.npz has 5 rows"):
        data.load_features("StudyA", "rep_a", data_dir=tiny)
    with pytest.raises(ParameterError, match="representations available"):
        data.load_features("StudyA", "nope", data_dir=tiny)
    with pytest.raises(ParameterError, match="unknown study"):
        data.load_study("Nope", data_dir=tiny)
    with pytest.raises(ParameterError, match="not a directory"):
        data.list_studies(tiny / "missing")


# ------------------------------------------------------------------ noise and AUC


def test_degrade_ratings_conventions():
    rng = np.random.default_rng(1)
    s = np.full(40000, 0.5)
    y = studies.degrade_ratings(s, 0.05, noise="absolute", rng=rng)
    assert np.std(y - s) == pytest.approx(0.05, rel=0.03)
    s2 = rng.uniform(0.45, 0.55, 40000)
    y2 = studies.degrade_ratings(s2, 0.5, noise="relative", rng=2)
    assert np.std(y2 - s2) == pytest.approx(0.5 * np.std(s2), rel=0.03)
    y3 = studies.degrade_ratings(s2, 10.0, rng=3)
    assert y3.min() >= 0 and y3.max() <= 1 and np.mean((y3 == 0) | (y3 == 1)) > 0.9
    with pytest.raises(ParameterError, match="noise"):
        studies.degrade_ratings(s, 0.1, noise="gaussian")
    assert len(studies.DEFAULT_DELTAS) == 9
    assert studies.DEFAULT_DELTAS[0] == pytest.approx(0.1) and studies.DEFAULT_DELTAS[-1] == pytest.approx(10)


def test_robustness_auc_analytic():
    d = np.logspace(-1, 1, 9)
    assert studies.robustness_auc(d, np.full(9, 0.4)) == pytest.approx(0.8)
    x = np.log10(d)
    assert studies.robustness_auc(d, 0.5 - 0.2 * x) == pytest.approx(1.0)  # integral of 0.5-0.2x on [-1,1]
    two = np.stack([np.full(9, 0.2), np.full(9, 0.6)], axis=1)
    assert studies.robustness_auc(d, two) == pytest.approx(0.8)


# ------------------------------------------------------------------------- CLI


def test_cli_table_exact_and_faithful_with_resume(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["table", "--data", str(tiny), "--out", str(out), "--modes", "exact", "faithful-warm"]
    assert cli.main(argv) == 0
    with open(out / "explained_variance.csv") as fh:
        assert fh.readline().strip() == "study,representation,alignment,mode,p2,validation"
    rows = _read_csv(out / "explained_variance.csv")
    assert len(rows) == 2 * 2 * 2
    assert {r["alignment"] for r in rows} == {"aligned"} and {r["validation"] for r in rows} == {"in-sample"}
    p2 = {(r["study"], r["representation"], r["mode"]): float(r["p2"]) for r in rows}
    for st in ("StudyA", "StudyB"):
        assert p2[(st, "rep_a", "exact")] == pytest.approx(1.0, abs=1e-9)  # ratings are d_v^2 of rep_a
        for rep in ("rep_a", "rep_b"):
            assert p2[(st, rep, "exact")] >= p2[(st, rep, "faithful-warm")] - 1e-12
    page = (out / "explained_variance.html").read_text()
    assert "median" in page and "IQR" in page and "faithful-warm" in page and "rep_a (aligned)" in page
    assert not list(out.rglob("*.tmp"))
    capsys.readouterr()
    # resume: everything cached (joblib.Memory, content hash); then change one feature file
    # and only its two fits run again
    assert cli.main(argv) == 0
    assert "8 fits found in the cache, 0 to run" in capsys.readouterr().out
    F = np.load(tiny / "features" / "rep_b" / "StudyA.npz")["features"]
    np.savez(tiny / "features" / "rep_b" / "StudyA.npz", features=F * 2.0)
    assert cli.main(argv) == 0
    assert "6 fits found in the cache, 2 to run" in capsys.readouterr().out
    again = _read_csv(out / "explained_variance.csv")
    # the exact P^2 does not depend on the features' scale
    same = [r for r in rows if not (r["study"] == "StudyA" and r["representation"] == "rep_b")]
    assert [r for r in again if not (r["study"] == "StudyA" and r["representation"] == "rep_b")] == same


def test_cli_errors(tiny, tmp_path, capsys):
    assert cli.main(["table", "--data", str(tiny), "--out", str(tmp_path / "o"), "--studies", "Nope"]) == 2
    assert "unknown study" in capsys.readouterr().err
    assert cli.main(["table", "--data", str(tmp_path / "x"), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow  # starts two joblib worker processes
def test_add_subparsers_registers_on_gear_parser(tiny, tmp_path):
    parser = argparse.ArgumentParser(prog="gear")
    sub = parser.add_subparsers(dest="command")
    cli.add_subparsers(sub)
    args = parser.parse_args(["timbre", "robustness", "--data", str(tiny), "--out", str(tmp_path / "r"),
                              "--noise", "relative", "--n-jobs", "2", "--quiet"])
    assert args.func is cli.run and args.noise == "relative" and args.n_jobs == 2
    assert args.func(args) == 0
    rows = _read_csv(tmp_path / "r" / "robustness.csv")
    assert {r["noise"] for r in rows} == {"relative"}


def test_cli_robustness_outputs(tiny, tmp_path):
    out = tmp_path / "rob"
    assert cli.main(["robustness", "--data", str(tiny), "--out", str(out), "--quiet"]) == 0
    with open(out / "robustness.csv") as fh:
        assert fh.readline().strip().startswith("study,representation,alignment,delta,realisation,p2")
    rows = _read_csv(out / "robustness.csv")
    assert len(rows) == 2 * 2 * 9 * 5
    assert {r["noise"] for r in rows} == {"absolute"}
    auc = _read_csv(out / "robustness_auc.csv")
    assert list(auc[0])[:4] == ["study", "representation", "alignment", "auc"]
    assert len(auc) == 4
    deltas = np.logspace(-1, 1, 9)
    for a in auc:
        sel = [r for r in rows if r["study"] == a["study"] and r["representation"] == a["representation"]]
        mean = [np.mean([float(r["p2"]) for r in sel if np.isclose(float(r["delta"]), d)]) for d in deltas]
        assert float(a["auc"]) == pytest.approx(scipy.integrate.trapezoid(mean, np.log10(deltas)), abs=1e-5)
        assert a["noise"] == "absolute"
    db = {a["study"]: float(a["delta_bar"]) for a in auc}
    assert db == pytest.approx({"StudyA": 0.5, "StudyB": 0.3})
    # the same noise draws for every representation: learning on noisy ratings of the
    # perfectly explained rep_a stays close to 1 at the smallest delta
    small = [float(r["p2"]) for r in rows if r["representation"] == "rep_a" and np.isclose(float(r["delta"]), 0.1)]
    assert min(small) > 0.5
    page = (out / "robustness.html").read_text()
    assert "noise convention: absolute" in page
    assert "<script src=\"http" not in page and len(page) > 1_000_000  # plotly.js embedded
    meta = json.loads((out / "robustness.json").read_text())
    assert meta["noise"] == "absolute" and len(meta["deltas"]) == 9


# -------------------------------------------------------------------- zoo hook


class _TinyModel:
    sample_rate = 16000
    scene_embedding_size = 4
    timestamp_embedding_size = 4


def _tiny_module(calls):
    import torch

    mod = types.ModuleType("gear_test_tiny_hear")
    mod.__spec__ = importlib.machinery.ModuleSpec("gear_test_tiny_hear", loader=None)

    def load_model(model_file_path=""):
        return _TinyModel()

    def get_scene_embeddings(audio, model):
        assert isinstance(audio, torch.Tensor) and audio.dtype == torch.float32
        calls.append(tuple(audio.shape))
        x = audio.double()
        n = torch.full((x.shape[0],), float(x.shape[1]))
        rms = x.pow(2).mean(1).sqrt()
        zc = (torch.diff(torch.sign(x), dim=1) != 0).double().mean(1)
        return torch.stack([n / 1000.0, rms, zc, x.abs().max(1).values], 1).float()

    mod.load_model = load_model
    mod.get_scene_embeddings = get_scene_embeddings
    return mod


@pytest.fixture
def tiny_hear(monkeypatch):
    from embeddings import registry
    from embeddings.base import ModelSpec

    calls = []
    monkeypatch.setitem(sys.modules, "gear_test_tiny_hear", _tiny_module(calls))
    spec = ModelSpec(name="tiny-hear", module="gear_test_tiny_hear", description="test module")
    monkeypatch.setitem(registry.REGISTRY, "tiny-hear", spec)
    return calls


def test_zoo_features_resamples_and_embeds_each_sound(tiny, tiny_hear):
    st = data.load_study("StudyA", data_dir=tiny)
    F = studies.zoo_features(st, "tiny-hear", normalise=False)
    assert F.shape == (6, 4)
    lengths = [int(SR * (0.15 + 0.01 * i)) for i in range(6)]
    expected = [int(np.ceil(n * 160 / 441)) for n in lengths]  # 44.1 kHz -> 16 kHz
    assert tiny_hear == [(1, n) for n in expected]
    assert np.allclose(F[:, 0], np.array(expected) / 1000.0)
    # a 4x higher-pitched tone crosses zero more often: the embedding saw the real audio
    assert F[-1, 2] > F[0, 2]
    Fn = studies.zoo_features(st, "tiny-hear")
    assert np.mean(np.max(np.abs(Fn), axis=1)) == pytest.approx(1.0)


def test_cli_table_with_zoo_model(tiny, tmp_path, tiny_hear):
    out = tmp_path / "zoo"
    assert cli.main(["table", "--data", str(tiny), "--out", str(out), "--representations", "rep_a",
                     "--zoo", "tiny-hear", "--modes", "exact", "--quiet"]) == 0
    rows = _read_csv(out / "explained_variance.csv")
    assert [r["representation"] for r in rows] == ["rep_a", "tiny-hear"] * 2
    assert [r["alignment"] for r in rows] == ["aligned"] * 4
    assert (out / "cache" / "features" / "tiny-hear" / "StudyA.npz").is_file()
    n_calls = len(tiny_hear)
    assert n_calls == 11
    # the zoo features are cached: a robustness run does not embed again
    assert cli.main(["robustness", "--data", str(tiny), "--out", str(out), "--representations", "rep_a",
                     "--zoo", "tiny-hear", "--deltas", "0.1", "1", "--realisations", "2", "--quiet"]) == 0
    assert len(tiny_hear) == n_calls
    # MetricLearner on the zoo features agrees with the table
    F = np.load(out / "cache" / "features" / "tiny-hear" / "StudyA.npz")["features"]
    st = data.load_study("StudyA", data_dir=tiny)
    p2 = MetricLearner().fit(F, st.ratings).p2_
    row = next(r for r in rows if r["study"] == "StudyA" and r["representation"] == "tiny-hear")
    assert float(row["p2"]) == pytest.approx(p2, rel=1e-5)


def test_unknown_representation(tiny, tmp_path):
    with pytest.raises(ParameterError, match="unknown representation"):
        studies.explained_variance_table(out_dir=tmp_path / "u", data_dir=tiny, representations=["mfcc_x"])


# ------------------------------------------------------------------- alignment


def _write_row_order(root, orders):
    """Row-order file: ``orders[study] = stored_row of each sorted file``."""
    lines = ["study,stored_row,sorted_index,file,match_corr"]
    for study, stored in orders.items():
        files = sorted(p.name for p in (root / "sounds" / study).iterdir())
        lines += [f"{study},{r},{k},{files[k]},1.0" for k, r in enumerate(stored)]
    (root / data.ROW_ORDER_FILE).write_text("\n".join(lines) + "\n")


def _label(root, **labels):
    (root / "alignment.csv").write_text(
        "representation,alignment\n" + "".join(f"{r},{a}\n" for r, a in labels.items()))


def test_realigned_rows_follow_the_row_order_file(tiny):
    perm = {"StudyA": [3, 0, 5, 1, 4, 2], "StudyB": [4, 2, 0, 1, 3]}
    for study, stored in perm.items():
        F = data.load_features(study, "rep_a", data_dir=tiny)
        G = np.empty_like(F)
        G[stored] = F  # X_sorted[k] = X_stored[stored[k]]
        np.savez(tiny / "features" / "rep_a" / f"{study}.npz", features=G)
    _write_row_order(tiny, perm)
    _label(tiny, rep_a="realigned", rep_b="aligned")
    assert data.representation_alignment("rep_a", data_dir=tiny) == "realigned"
    for study, stored in perm.items():
        np.testing.assert_array_equal(data.read_row_order(study, data_dir=tiny), stored)
    rows = studies.explained_variance_table(out_dir=tiny.parent / "o", data_dir=tiny, modes=["exact"])
    p2 = {(r["study"], r["representation"]): (r["p2"], r["alignment"]) for r in rows}
    assert p2[("StudyA", "rep_a")][0] == pytest.approx(1.0, abs=1e-9)  # realigned: fully explained again
    assert p2[("StudyA", "rep_a")][1] == "realigned" and p2[("StudyA", "rep_b")][1] == "aligned"


@pytest.mark.parametrize("edit,message", [
    (lambda rows: rows[:-1], r"5 rows for 6 sound files .*missing: \['s05.aiff'\]"),
    (lambda rows: rows + [rows[0]], r"duplicated: \['s00.aiff'\]"),
    (lambda rows: rows[:-1] + [rows[-1].replace("s05.aiff", "zz.aiff")], r"not in sounds/StudyA: \['zz.aiff'\]"),
    (lambda rows: [rows[0].replace("StudyA,3,", "StudyA,0,")] + rows[1:], "not a permutation"),
])
def test_bad_row_order_file_names_study_and_file_and_caches_nothing(tiny, tmp_path, edit, message):
    _write_row_order(tiny, {"StudyA": [3, 0, 5, 1, 4, 2], "StudyB": [0, 1, 2, 3, 4]})
    path = tiny / data.ROW_ORDER_FILE
    lines = path.read_text().splitlines()
    a = [x for x in lines[1:] if x.startswith("StudyA")]
    b = [x for x in lines[1:] if x.startswith("StudyB")]
    path.write_text("\n".join([lines[0]] + b + edit(a)) + "\n")
    _label(tiny, rep_b="realigned")
    with pytest.raises(ParameterError, match=f"study StudyA, row-order file .*{data.ROW_ORDER_FILE}: .*{message}"):
        data.read_row_order("StudyA", data_dir=tiny)
    out = tmp_path / "o"
    with pytest.raises(ParameterError, match="study StudyA"):
        studies.explained_variance_table(out_dir=out, data_dir=tiny)
    assert not (out / "cache").exists() or not any(p.is_file() for p in (out / "cache").rglob("*"))


def test_wrong_feature_rows_and_unknown_label_cache_nothing(tiny, tmp_path, capsys):
    np.savez(tiny / "features" / "rep_b" / "StudyB.npz", features=np.ones((4, 3)))
    out = tmp_path / "o"
    assert cli.main(["table", "--data", str(tiny), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "study StudyB: feature file" in err and "StudyB.npz has 4 rows" in err
    assert not (out / "cache").exists() or not any(p.is_file() for p in (out / "cache").rglob("*"))
    _label(tiny, rep_a="sorted")
    with pytest.raises(ParameterError, match=r"alignment.csv, rep_a: unknown alignment label 'sorted'"):
        data.representation_alignment("rep_a", data_dir=tiny)


def test_unaligned_left_out_unless_asked(tiny, tmp_path, capsys):
    _label(tiny, rep_b="unaligned")
    out = tmp_path / "o"
    assert cli.main(["table", "--data", str(tiny), "--out", str(out), "--quiet"]) == 0
    rows = _read_csv(out / "explained_variance.csv")
    assert {r["representation"] for r in rows} == {"rep_a"}
    assert {r["mode"] for r in rows} == {"exact", "exact-loso"}  # in- and out-of-sample by default
    assert cli.main(["table", "--data", str(tiny), "--out", str(out), "--representations", "rep_b"]) == 2
    assert "--include-unaligned" in capsys.readouterr().err
    assert cli.main(["table", "--data", str(tiny), "--out", str(out), "--include-unaligned", "--quiet"]) == 0
    rows = _read_csv(out / "explained_variance.csv")
    assert {(r["representation"], r["alignment"]) for r in rows} == {("rep_a", "aligned"), ("rep_b", "unaligned")}
    page = (out / "explained_variance.html").read_text()
    assert "rep_b (unaligned)" in page and "Ranking by median out-of-sample" in page
    assert cli.main(["robustness", "--data", str(tiny), "--out", str(out), "--deltas", "0.1", "1",
                     "--realisations", "1", "--quiet"]) == 0
    assert {r["representation"] for r in _read_csv(out / "robustness_auc.csv")} == {"rep_a"}


# --------------------------------------------------------- metrics, published


def test_cli_metrics_writes_rank_metrics(tiny, tmp_path):
    from gear.timbre.rankmetrics import rank_metrics

    out = tmp_path / "m"
    assert cli.main(["metrics", "--data", str(tiny), "--out", str(out), "--quiet"]) == 0
    with open(out / "rank_metrics.csv") as fh:
        assert fh.readline().strip() == "study,representation,alignment,distance,metric,value"
    rows = _read_csv(out / "rank_metrics.csv")
    assert len(rows) == 2 * 2 * 3 * 5
    st = data.load_study("StudyA", data_dir=tiny)
    want = rank_metrics(data.load_features(st, "rep_b"), st.ratings_matrix)
    got = [r for r in rows if r["study"] == "StudyA" and r["representation"] == "rep_b"]
    assert [float(r["value"]) for r in got] == pytest.approx([w["value"] for w in want], rel=1e-5)


def test_cli_published_table(tiny, tmp_path):
    values = tmp_path / "published.csv"
    values.write_text("study,representation,published\nStudyA,rep_a,0.9\n")
    out = tmp_path / "p"
    assert cli.main(["table", "--published", "--published-file", str(values), "--data", str(tiny),
                     "--out", str(out), "--quiet"]) == 0
    with open(out / "published.csv") as fh:
        assert fh.readline().strip() == "study,representation,alignment,published,faithful,exact,out_of_sample"
    rows = {r["study"]: r for r in _read_csv(out / "published.csv")}
    assert set(rows) == {"StudyA", "StudyB"}
    a, b = rows["StudyA"], rows["StudyB"]
    assert a["published"] == "0.9" and a["alignment"] == "aligned"
    assert float(a["exact"]) == pytest.approx(1.0, abs=1e-9) and float(a["faithful"]) <= float(a["exact"]) + 1e-12
    assert b["published"] == "" and b["faithful"] == ""  # the faithful procedure runs only where published
    assert 0 <= float(a["out_of_sample"]) <= 1
    assert "published" in (out / "published.html").read_text()


# -------------------------------------------------------------------- evaluate


@pytest.mark.filterwarnings("ignore:no nonnegative weighting:RuntimeWarning")
def test_evaluate_any_embedding_function(tiny):
    from gear.timbre import evaluate
    from gear.timbre.evaluation import study_audio

    seen = []

    def embed(audio):
        seen.append((audio.shape, audio.dtype))
        spectrum = np.abs(np.fft.rfft(audio, axis=1))
        return np.log(np.stack([b.mean(1) for b in np.array_split(spectrum, 16, axis=1)], 1) + 1e-6)

    ev = evaluate(embed, 16000, data_dir=tiny)
    assert [r["study"] for r in ev.in_sample] == ["StudyB", "StudyA"]  # studies.csv order
    # audio: one zero-padded float32 batch per study at the stated rate
    assert seen[0][1] == np.float32 and seen[0][0] == (5, int(round(0.19 * 16000)))
    st = data.load_study("StudyA", data_dir=tiny)
    F = embed(study_audio("StudyA", 16000, data_dir=tiny))
    row = next(r for r in ev.in_sample if r["study"] == "StudyA")
    assert row["p2"] == pytest.approx(MetricLearner().fit(F, st.ratings).p2_, abs=1e-12)
    oos = next(r for r in ev.out_of_sample if r["study"] == "StudyA")
    assert oos["mode"] == "exact-loso" and oos["p2"] <= row["p2"] + 1e-12
    assert len(ev.rank_metrics) == 2 * 3 * 5
    med = ev.medians()
    assert set(med) >= {"in_sample", "out_of_sample", ("l2", "spearman")}
    with pytest.raises(ParameterError, match=r"embed_fn returned shape \(3,\)"):
        evaluate(lambda a: np.ones(3), 16000, data_dir=tiny)
    with pytest.raises(ParameterError, match="out_of_sample_mode"):
        evaluate(embed, 16000, data_dir=tiny, out_of_sample_mode="kfold")
