"""Sensitivity, invariance and the overlap of parameter directions.

Definitions
-----------
Let ``z`` be the parameters on their chosen scales, standardised (one unit = one standard
deviation of the parameter over the tone set), ``x(z)`` the embedding, ``s`` its overall spread
(``s^2 = mean_i ||x_i - mean||^2``) and ``J_i = dx/dz`` (dim x n_params) the local Jacobian at
sound i. Everything below is built from the local Gram matrices ``G_i ~ J_i^T J_i``
(n_params x n_params): ``G_i[j, j]`` is how far (squared) the embedding moves per unit step of
parameter j, ``G_i[j, l]`` how much the two directions overlap.

``G_i`` is estimated *without the bias of embedding roughness*: a finite difference or a local fit
of a rough (noisy) embedding has a large norm even where the embedding has no consistent
response to the parameter (a shuffled embedding "moves" a lot at every step), so every squared
norm is replaced by an unbiased estimate of the squared norm of the consistent part:

- ``method="finite_difference"`` (all parameters on a complete factorial grid, one sound per
  cell, others exactly fixed along every grid step): central differences
  ``g_ij = (x(c + e_j) - x(c - e_j)) / (z_j(c + e_j) - z_j(c - e_j))`` at cell c;
  ``G_i[j, l] = <g_ij, g_il>`` for j != l (the two differences share no sound, so independent
  roughness does not bias it) and ``G_i[j, j]`` = mean of ``<g_j(c), g_j(c')>`` over the
  parallel differences at the neighbouring cells ``c' = c +- e_m``, m != j (again no shared sound).
- ``method="regression"`` (otherwise, e.g. the paper dataset, where f1 is drawn at random per
  (alpha, r) cell, so a grid step in alpha also changes f1 and does not hold the others fixed):
  for each sound, a least-squares affine fit ``x ~ a + J (z - z_i)`` over the sound and its
  ``n_neighbors`` nearest neighbours in z-space (m points); with ``A = Z_c^T Z_c`` and
  residual variance ``sigma^2 = RSS / (m - n_params - 1)`` (summed over embedding dimensions),
  ``G_i = J^T J - sigma^2 A^{-1}``: the OLS bias ``E[J^T J] = J_true^T J_true + sigma^2 A^{-1}``
  removed.

Summaries (``p`` = number of parameters):

- sensitivity ``S_j = sqrt(max(0, mean_i G_i[j, j])) / s``: embedding spreads travelled per
  standard deviation of parameter j. For an embedding linear in uncorrelated parameters,
  ``sum_j S_j^2 = 1`` (each ``S_j^2`` is the share of the embedding's variance due to j);
  ``S_j = 0`` means invariant to j.
- block Gram ``G_b = mean_{i in b} G_i``: theta space is cut into blocks (``overlap_blocks`` = 2
  per axis by default: its 2^p octants, ~n / 2^p sounds each; cut as for the probes' folds) and
  the Gram estimates are averaged *with their signs* within each block, so that roughness
  averages out before any ratio is taken while overlaps whose sign changes from one region of
  theta space to another do not cancel.
- overlap ``O_jl = sum_b w_b |G_b[j, l]| / sqrt(G_b[j, j] G_b[l, l])`` (the |cosine| between the
  directions of j and l, averaged over blocks weighted by their sound counts ``w_b``, over
  blocks where both directions are resolved, i.e. both squared norms > 0; NaN when there is no
  such block, e.g. for a parameter the embedding is invariant to).
- orthogonality ``Omega = sum_b w_b det(C_b)``, ``C_b`` the cosine matrix of ``G_b`` (unit
  diagonal, off-diagonal entries clipped to [-1, 1], det clipped to [0, 1]), over blocks where
  all directions are resolved: 1 when the directions are orthogonal, 0 when they are linearly
  dependent (Hadamard's ratio: the squared volume spanned by the unit directions).
- balance ``V = (prod_j S_j^2)^(1/p) / max(mean_j S_j^2, 1/p)``: the geometric over the arithmetic
  mean of the squared sensitivities (1 when every parameter moves the embedding equally, 0 when
  any parameter is invisible), with the arithmetic mean floored at 1/p so that parameters that
  together explain little of the embedding's spread also score low.
- disentanglement score ``D = Omega * V`` in [0, 1]: 1 for an embedding that moves along
  orthogonal, equally long, non-vanishing directions for the parameters and explains all its
  spread with them (theta itself, standardised, scores 1); 0 when any parameter is invisible or
  two parameters share a direction.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from gear.errors import ParameterError

from ._inputs import PARAM_NAMES, Prepared, check_int, prepare

__all__ = ["sensitivity_analysis", "distance_per_unit", "SENSITIVITY_METHODS"]

SENSITIVITY_METHODS = ("auto", "finite_difference", "regression")
_CHUNK = 256


# ---------------------------------------------------------------------------------------------
# finite differences on a factorial grid
# ---------------------------------------------------------------------------------------------
def _grid_lookup(prep: Prepared):
    """(cells, lookup) when the sounds form a factorial grid usable for finite differences,
    else (None, reason)."""
    if prep.grid_index is None:
        return None, "no grid_index given"
    if prep.p < 2:
        return None, "finite differences need at least 2 parameters (parallel steps)"
    if not np.all(prep.on_grid):
        off = [nm for nm, g in zip(prep.param_names, prep.on_grid) if not g]
        return None, (f"{', '.join(off)} not on a grid, so a grid step does not hold every "
                      f"other parameter fixed")
    cells = prep.grid_index
    shape = cells.max(axis=0) + 1
    if np.prod(shape.astype(float)) > max(50.0 * prep.n, 1e6):
        return None, "grid_index positions too sparse for a lookup table"
    flat = np.ravel_multi_index(cells.T, tuple(shape))
    if np.unique(flat).size != prep.n:
        return None, "several sounds share a grid cell"
    lookup = np.full(int(np.prod(shape)), -1, np.int64)
    lookup[flat] = np.arange(prep.n)
    lookup = lookup.reshape(tuple(shape))
    for j, name in enumerate(prep.param_names):
        if np.unique(cells[:, j]).size < 3:
            return None, f"{name} has fewer than 3 grid positions (no central difference)"
    eye = np.eye(prep.p, dtype=np.int64)
    for j, name in enumerate(prep.param_names):
        nb = _neighbour_rows(cells, lookup, eye[j])
        ok = nb >= 0
        others = np.delete(np.arange(prep.p), j)
        moved = np.abs(prep.z[nb[ok]][:, others] - prep.z[ok][:, others])
        if moved.size and moved.max() > 1e-9:
            return None, (f"a grid step in {name} also changes another parameter (grid "
                          f"positions do not match the values)")
    return (cells, lookup), ""


def _neighbour_rows(cells, lookup, offset):
    """Row of the sound at cells + offset (-1 where outside the grid or missing)."""
    target = cells + offset
    inside = np.all((target >= 0) & (target < np.array(lookup.shape)), axis=1)
    rows = np.full(cells.shape[0], -1, np.int64)
    rows[inside] = lookup[tuple(target[inside].T)]
    return rows


def _fd_grams(prep: Prepared, cells, lookup) -> np.ndarray:
    """Per-sound Gram estimates from central differences, shape (n, p, p); NaN where
    undefined."""
    n, p = prep.n, prep.p
    X, z = prep.X, prep.z
    eye = np.eye(p, dtype=np.int64)
    # plus/minus rows of the central difference along j, at every cell
    plus = np.stack([_neighbour_rows(cells, lookup, eye[j]) for j in range(p)])  # (p, n)
    minus = np.stack([_neighbour_rows(cells, lookup, -eye[j]) for j in range(p)])
    ok = (plus >= 0) & (minus >= 0)
    step = np.where(ok, z[np.maximum(plus, 0), np.arange(p)[:, None]]
                    - z[np.maximum(minus, 0), np.arange(p)[:, None]], np.nan)
    if np.any(ok & ~(np.abs(step) > 0)):
        raise ParameterError(
            "grid_index: two grid neighbours have the same parameter value; grid positions "
            "must follow the parameter's values"
        )
    # shifted cells for the parallel (roughness-free) products
    shifts = [(m, sgn) for m in range(p) for sgn in (1, -1)]
    shift_rows = {ms: _neighbour_rows(cells, lookup, ms[1] * eye[ms[0]]) for ms in shifts}
    G = np.full((n, p, p), np.nan)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(n, lo + _CHUNK))
        idx = np.arange(sl.start, sl.stop)

        def diff(rows_at, j):
            pr, mr = plus[j, rows_at], minus[j, rows_at]
            good = (rows_at >= 0) & (pr >= 0) & (mr >= 0)
            g = np.zeros((rows_at.size, X.shape[1]))
            g[good] = (X[pr[good]] - X[mr[good]]) / step[j, rows_at[good], None]
            return g, good

        here = [diff(idx, j) for j in range(p)]
        for j in range(p):
            gj, okj = here[j]
            acc = np.zeros(idx.size)
            cnt = np.zeros(idx.size)
            for (m, sgn), rows in shift_rows.items():
                if m == j:
                    continue
                gs, oks = diff(rows[idx], j)
                both = okj & oks
                acc[both] += np.einsum("ij,ij->i", gj[both], gs[both])
                cnt[both] += 1
            with np.errstate(invalid="ignore", divide="ignore"):
                G[idx, j, j] = np.where(cnt > 0, acc / cnt, np.nan)
            for l in range(j + 1, p):
                gl, okl = here[l]
                both = okj & okl
                val = np.full(idx.size, np.nan)
                val[both] = np.einsum("ij,ij->i", gj[both], gl[both])
                G[idx, j, l] = G[idx, l, j] = val
    return G


# ---------------------------------------------------------------------------------------------
# local linear regression over theta-space neighbours
# ---------------------------------------------------------------------------------------------
def _regression_grams(prep: Prepared, n_neighbors: int) -> np.ndarray:
    """Per-sound debiased Gram estimates from local affine fits, shape (n, p, p)."""
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    n, p = prep.n, prep.p
    X, z = prep.X, prep.z
    m = n_neighbors + 1
    _, idx = cKDTree(z).query(z, k=m)
    Zn = z[idx]  # (n, m, p)
    Zc = Zn - Zn.mean(axis=1, keepdims=True)
    A = np.einsum("nmp,nmq->npq", Zc, Zc)
    sq = np.einsum("ij,ij->i", X, X)
    G = np.full((n, p, p), np.nan)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        rows = np.repeat(np.arange(hi - lo), m)
        cols = idx[lo:hi].ravel()
        B = np.empty((hi - lo, p, X.shape[1]))
        for j in range(p):
            W = csr_matrix((Zc[lo:hi, :, j].ravel(), (rows, cols)), shape=(hi - lo, n))
            B[:, j, :] = W @ X
        Wm = csr_matrix((np.full(rows.size, 1.0 / m), (rows, cols)), shape=(hi - lo, n))
        xbar = Wm @ X
        ss = sq[idx[lo:hi]].sum(axis=1) - m * np.einsum("ij,ij->i", xbar, xbar)
        BBt = np.einsum("npd,nqd->npq", B, B)
        Ach = A[lo:hi]
        ev = np.linalg.eigvalsh(Ach)
        good = ev[:, 0] > 1e-10 * np.maximum(ev[:, -1], 1e-300)
        Ainv = np.zeros_like(Ach)
        Ainv[good] = np.linalg.inv(Ach[good])
        JtJ = Ainv @ BBt @ Ainv
        explained = np.einsum("npq,nqp->n", Ainv, BBt)
        sigma2 = np.maximum(ss - explained, 0.0) / (m - p - 1)
        Gc = JtJ - sigma2[:, None, None] * Ainv
        Gc[~good] = np.nan
        G[lo:hi] = Gc
    return G


# ---------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------
def _summarise(G: np.ndarray, spread: float, block: Optional[np.ndarray] = None) -> dict:
    """Sensitivities, overlaps and score from per-sound Gram estimates (see module docstring).

    ``block`` (n,) groups sounds whose Gram estimates are averaged (signed) before any
    normalisation; None averages over all sounds."""
    n, p, _ = G.shape
    usable = np.all(np.isfinite(G.reshape(n, -1)), axis=1)
    if block is None:
        block = np.zeros(n, np.int64)
    blocks = [b for b in np.unique(block[usable])]
    if not blocks:
        raise ParameterError(
            "no sound has the neighbours a local Jacobian needs; give more sounds or, for "
            "method='regression', raise n_neighbors"
        )
    Gb = np.stack([G[usable & (block == b)].mean(axis=0) for b in blocks])  # (B, p, p)
    wb = np.array([np.sum(usable & (block == b)) for b in blocks], float)
    wb /= wb.sum()
    Gbar = np.einsum("b,bpq->pq", wb, Gb)
    sens = np.sqrt(np.maximum(np.diagonal(Gbar), 0.0)) / spread
    diag = np.diagonal(Gb, axis1=1, axis2=2)  # (B, p)
    resolved = diag > 0
    overlap = np.eye(p)
    for j in range(p):
        for l in range(j + 1, p):
            both = resolved[:, j] & resolved[:, l]
            if not np.any(both):
                overlap[j, l] = overlap[l, j] = np.nan
                continue
            c = np.abs(Gb[both, j, l]) / np.sqrt(diag[both, j] * diag[both, l])
            w = wb[both] / wb[both].sum()
            overlap[j, l] = overlap[l, j] = float(np.sum(w * np.minimum(c, 1.0)))
    full = np.all(resolved, axis=1)
    if np.any(full):
        d = np.sqrt(diag[full])
        C = np.clip(Gb[full] / (d[:, :, None] * d[:, None, :]), -1.0, 1.0)
        C[:, np.arange(p), np.arange(p)] = 1.0
        w = wb[full] / wb[full].sum()
        orthogonality = float(np.sum(w * np.clip(np.linalg.det(C), 0.0, 1.0)))
    else:
        orthogonality = float("nan")
    s2 = sens**2
    geo = float(np.exp(np.mean(np.log(s2)))) if np.all(s2 > 0) else 0.0
    balance = geo / max(float(np.mean(s2)), 1.0 / p)
    if balance == 0.0:
        score = 0.0
    else:
        score = orthogonality * balance if np.isfinite(orthogonality) else float("nan")
    return {
        "sensitivity": sens,
        "overlap": overlap,
        "orthogonality": orthogonality,
        "balance": float(balance),
        "score": float(score),
        "metric_tensor": Gbar / spread**2,
        "n_used": int(usable.sum()),
    }


def _sensitivity(prep: Prepared, *, n_neighbors: int = 20, method: str = "auto",
                 overlap_blocks: int = 2) -> dict:
    if method not in SENSITIVITY_METHODS:
        raise ParameterError(
            f"method={method!r}; choose one of {', '.join(SENSITIVITY_METHODS)}"
        )
    n_neighbors = check_int(n_neighbors, "jacobian_neighbors (n_neighbors)", 2 * prep.p,
                            prep.n - 1)
    overlap_blocks = check_int(overlap_blocks, "overlap_blocks", 1)
    note = ""
    grid = None
    if method in ("auto", "finite_difference"):
        grid, reason = _grid_lookup(prep)
        if grid is None:
            if method == "finite_difference":
                raise ParameterError(
                    f"method='finite_difference' needs every parameter on a complete factorial "
                    f"grid (one sound per cell, at least 3 positions per axis): {reason}; use "
                    f"method='regression'"
                )
            note = reason
    if method == "finite_difference" or (method == "auto" and grid is not None):
        used = "finite_difference"
        G = _fd_grams(prep, *grid)
    else:
        used = "regression"
        G = _regression_grams(prep, n_neighbors)
    from .probes import _block_ids

    block = None if overlap_blocks == 1 else _block_ids(prep, overlap_blocks)
    out = _summarise(G, prep.spread, block)
    out["method"] = used
    out["note"] = note
    out["n_neighbors"] = n_neighbors if used == "regression" else None
    return out


def sensitivity_analysis(embedding, theta, *, param_names: Sequence[str] = PARAM_NAMES,
                         grid_index=None, scales=None, n_neighbors: int = 20,
                         method: str = "auto", overlap_blocks: int = 2,
                         random_state=0) -> dict:
    """Sensitivity of the embedding to each parameter and overlap of their directions.

    See the module docstring for the definitions and formulas.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : np.ndarray, shape (n_sounds, n_params), float
    param_names, grid_index, scales, random_state
        As in :func:`gear.disentangle.disentanglement_metrics` (nothing here is random).
    n_neighbors : int
        Neighbours in standardised parameter space of each local fit (regression method).
    method : {"auto", "finite_difference", "regression"}
        ``"auto"``: finite differences when every parameter is on a complete factorial grid,
        local regression otherwise.
    overlap_blocks : int
        Blocks per parameter axis over which the local Gram matrices are averaged (signed)
        before overlaps and orthogonality are taken (2: the 2^n_params octants of theta
        space). 1 averages over all sounds (most robust to roughness, but overlaps whose sign
        changes across theta space cancel); more blocks resolve the overlap more locally but
        let roughness inflate it.

    Returns
    -------
    dict
        ``sensitivity`` (np.ndarray, shape (n_params,)), ``overlap`` (np.ndarray, shape
        (n_params, n_params), unit diagonal; NaN where a parameter is never resolved),
        ``orthogonality``, ``balance``, ``score`` (floats in [0, 1]; orthogonality is NaN when
        some parameter is never resolved), ``metric_tensor`` (np.ndarray, shape
        (n_params, n_params): the average of the local Gram matrices over all sounds divided by
        ``s^2``), ``n_used`` (sounds with a Gram estimate), ``method`` (the one used),
        ``note`` (why finite differences were not used, "" otherwise) and ``n_neighbors``.
    """
    prep = prepare(embedding, theta, param_names=param_names, grid_index=grid_index,
                   scales=scales, random_state=random_state)
    return _sensitivity(prep, n_neighbors=n_neighbors, method=method,
                        overlap_blocks=overlap_blocks)


# ---------------------------------------------------------------------------------------------
# distance per unit of each factor (causes beside nuisances)
# ---------------------------------------------------------------------------------------------
def distance_per_unit(embedding, theta, *, param_names: Sequence[str] = PARAM_NAMES, scales=None,
                      units=None, n_neighbors: Optional[int] = None, max_sounds: int = 4000,
                      random_state=0) -> dict:
    """How far the embedding moves per unit change of each factor: "how far does a 6 dB gain
    change move the embedding, compared with an octave?".

    Each factor is read on its scale (``u`` = the value, or its natural log where the scale is
    log) and its unit is a step ``units[name]`` in ``u`` (default: ln 2, an octave, for log
    factors; 1 otherwise: one step of a discrete factor's value codes, one unit of a linear
    factor; pass 6 for "per 6 dB"). The local Jacobian of every sound comes from the debiased
    local affine fit over its ``n_neighbors`` nearest sounds in standardised factor space (the
    ``regression`` Gram estimates of :func:`sensitivity_analysis`: the roughness of the
    embedding is subtracted, so a factor the embedding ignores gives ~0), and

        per_unit_j = sqrt(max(0, mean_i G_i[j, j])) * units_j / sd(u_j)

    is the RMS embedding distance travelled per unit of factor j (embedding units). ``relative``
    divides it by the median distance between two sounds of the set, so that models compare;
    ratios between factors (e.g. per 6 dB over per octave of f1) need no normalisation.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : np.ndarray, shape (n_sounds, n_params), float
    param_names, scales
        As in :func:`sensitivity_analysis`.
    units : mapping of str -> float, optional
        The unit step of a factor on its scale (see above).
    n_neighbors : int, optional
        Neighbours of each local fit (>= 2 n_params; default max(4 n_params + 2, n_sounds // 10):
        a fixed fraction of the set, because fixed-K fits get noisier as the design gets
        denser, and their noise floor is what an ignored factor reads).
    max_sounds : int
        Above this many sounds, a random subset of this size is used (seeded).
    random_state : int

    Returns
    -------
    dict
        ``per_unit`` and ``relative`` (np.ndarray, shape (n_params,)), ``median_distance``
        (float), ``units`` (np.ndarray, the unit steps used), ``n_used`` (int).
    """
    from scipy.spatial.distance import pdist

    embedding, theta = np.asarray(embedding, dtype=np.float64), np.asarray(theta, dtype=np.float64)
    max_sounds = check_int(max_sounds, "max_sounds", 4 * theta.shape[1] + 2 if theta.ndim == 2 else 2)
    rng = np.random.default_rng(random_state if isinstance(random_state, (int, np.integer)) else 0)
    if embedding.shape[0] > max_sounds and embedding.shape[0] == theta.shape[0]:
        rows = np.sort(rng.choice(embedding.shape[0], max_sounds, replace=False))
        embedding, theta = embedding[rows], theta[rows]
    prep = prepare(embedding, theta, param_names=param_names, scales=scales, random_state=random_state)
    if n_neighbors is None:
        n_neighbors = min(max(4 * prep.p + 2, prep.n // 10), prep.n - 1)
    n_neighbors = check_int(n_neighbors, "n_neighbors", 2 * prep.p, prep.n - 1)
    units = dict(units or {})
    unknown = set(units) - set(prep.param_names)
    if unknown:
        raise ParameterError(f"units: unknown factor {sorted(unknown)[0]!r}; factors are {', '.join(prep.param_names)}")
    step = np.array([float(units.get(name, np.log(2.0) if prep.scales[name] == "log" else 1.0))
                     for name in prep.param_names])
    if not np.all(step > 0):
        raise ParameterError(f"units must be > 0, got {dict(zip(prep.param_names, step))}")
    G = _regression_grams(prep, n_neighbors)
    usable = np.all(np.isfinite(G.reshape(prep.n, -1)), axis=1)
    if not usable.any():
        raise ParameterError("no sound has the neighbours a local fit needs; give more sounds or raise n_neighbors")
    per_z = np.sqrt(np.maximum(np.diagonal(G[usable], axis1=1, axis2=2).mean(axis=0), 0.0))
    per_unit = per_z * step / prep.u.std(axis=0)
    sample = prep.X if prep.n <= 2000 else prep.X[rng.choice(prep.n, 2000, replace=False)]
    median = float(np.median(pdist(sample)))
    return {"per_unit": per_unit, "relative": per_unit / median, "median_distance": median, "units": step,
            "n_used": int(usable.sum())}
