"""Distance per unit of each factor (causes beside nuisances), on controls with analytic answers."""
import numpy as np
import pytest

from gear.disentangle import distance_per_unit
from gear.errors import ParameterError

NAMES = ("f1_hz", "gain_db", "ignored")


def _control(n=600, noise=0.0, seed=0):
    """An embedding that moves 2 units per octave of f1 and 1 unit per 6 dB of gain, in a random
    orthonormal 6-D frame, blind to the third factor."""
    rng = np.random.default_rng(seed)
    theta = np.column_stack([110.0 * 2.0 ** rng.uniform(0, 3, n), rng.uniform(-12, 0, n), rng.uniform(0, 1, n)])
    frame, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    latent = np.zeros((n, 6))
    latent[:, 0] = 2.0 * np.log2(theta[:, 0])
    latent[:, 1] = theta[:, 1] / 6.0
    latent += noise * rng.normal(size=latent.shape)
    return latent @ frame, theta


def test_linear_control_gives_the_known_distances_per_unit():
    embedding, theta = _control()
    out = distance_per_unit(embedding, theta, param_names=NAMES, scales={"f1_hz": "log"}, units={"gain_db": 6.0})
    np.testing.assert_allclose(out["per_unit"][:2], [2.0, 1.0], rtol=1e-6)  # exact: the embedding is linear
    assert out["per_unit"][2] < 1e-6
    assert out["relative"][1] / out["relative"][0] == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(out["relative"], out["per_unit"] / out["median_distance"])


def test_rough_embedding_is_debiased():
    """Independent noise (0.1 units per dimension) must not read as sensitivity to the ignored
    factor (over its range, < 10 % of the gain's movement over its range), nor bias the others
    beyond 10 %."""
    embedding, theta = _control(noise=0.1, seed=1)
    out = distance_per_unit(embedding, theta, param_names=NAMES, scales={"f1_hz": "log"}, units={"gain_db": 6.0})
    np.testing.assert_allclose(out["per_unit"][:2], [2.0, 1.0], rtol=0.1)
    assert out["per_unit"][2] * 1.0 < 0.1 * out["per_unit"][1] * 2.0


def test_shuffled_embedding_moves_with_no_factor():
    """Across each factor's design range, a shuffled embedding moves < 15 % of what the real one
    moves across f1's range (3 octaves; the rest is the estimate's noise floor)."""
    embedding, theta = _control(noise=0.0, seed=2)
    shuffled = embedding[np.random.default_rng(3).permutation(len(embedding))]
    ranges = np.array([3.0, 2.0, 1.0])  # octaves, 6 dB steps, units
    real = distance_per_unit(embedding, theta, param_names=NAMES, scales={"f1_hz": "log"}, units={"gain_db": 6.0})
    out = distance_per_unit(shuffled, theta, param_names=NAMES, scales={"f1_hz": "log"}, units={"gain_db": 6.0})
    assert np.all(out["relative"] * ranges < 0.15 * real["relative"][0] * 3.0), out["relative"]


def test_subsampling_and_bad_units():
    embedding, theta = _control(n=900)
    out = distance_per_unit(embedding, theta, param_names=NAMES, scales={"f1_hz": "log"}, max_sounds=300)
    assert out["per_unit"][1] == pytest.approx(1.0 / 6.0, rel=1e-6)  # default unit of a linear factor: 1 dB
    with pytest.raises(ParameterError, match="unknown factor 'gain'"):
        distance_per_unit(embedding, theta, param_names=NAMES, units={"gain": 6.0})
