"""Tail models: the generalized Pareto distribution (GPD) for scores above a high cutoff.

Peaks over threshold (Pickands 1975; Balkema & de Haan 1974): for a wide class of distributions, the
excesses ``y = s - u`` of the scores above a high cutoff ``u`` are approximately GPD with shape ``xi``
and scale ``sigma``::

    P(Y > y) = (1 + xi * y / sigma) ** (-1 / xi)      (xi != 0)
             = exp(-y / sigma)                        (xi == 0)

with support ``y < -sigma / xi`` when ``xi < 0`` (a bounded score, such as a cosine, has ``xi < 0``).
In biometrics the model extrapolates FMR below what the non-mated comparisons can resolve (ISO/IEC
5152; Shi et al., "Estimating the false match rate at very low thresholds", and Wein & Baveja 2005).

:func:`fit_gpd` is the (optionally weighted) maximum-likelihood fit, with ``xi > -1`` (where the
likelihood is bounded; Smith 1985 shows the usual asymptotics for ``xi > -1/2``), and the inverse
observed information as covariance. Weights let a subject bootstrap refit without copying data.

>>> import numpy as np
>>> from scipy.stats import genpareto
>>> y = genpareto.rvs(-0.2, scale=0.05, size=20_000, random_state=1)
>>> fit = fit_gpd(y)
>>> round(fit.shape, 1), round(fit.scale, 2)
(-0.2, 0.05)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceaudit.errors import InputError

__all__ = ["GPDFit", "fit_gpd", "gpd_sf", "gpd_upper_endpoint"]

#: below this |xi| the exponential limit is used (the two formulas agree to ~1e-12 relative)
_XI_ZERO = 1e-9


def gpd_sf(y: np.ndarray | float, shape: float, scale: float) -> np.ndarray:
    """Survival function ``P(Y > y)`` of GPD(shape, scale) excesses (``y < 0`` gives 1)."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if abs(shape) < _XI_ZERO:
        return np.exp(-y / scale)
    z = 1.0 + shape * y / scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.where(z > 0, np.power(np.where(z > 0, z, 1.0), -1.0 / shape), 0.0)
    return out


def gpd_upper_endpoint(shape: float, scale: float) -> float:
    """Largest possible excess: ``-scale / shape`` when ``shape < 0``, else ``inf``."""
    return -scale / shape if shape < 0 else np.inf


@dataclass(frozen=True)
class GPDFit:
    """A maximum-likelihood GPD fit of excesses over a cutoff."""

    shape: float
    scale: float
    n: float  # number (or total weight) of excesses
    loglik: float
    cov: np.ndarray  # 2 x 2 covariance of (shape, scale), inverse observed information; NaN if singular

    @property
    def se(self) -> tuple[float, float]:
        d = (
            np.sqrt(np.clip(np.diag(self.cov), 0, None))
            if np.all(np.isfinite(self.cov))
            else (np.nan, np.nan)
        )
        return float(d[0]), float(d[1])

    def sf(self, y: np.ndarray | float) -> np.ndarray:
        return gpd_sf(y, self.shape, self.scale)

    def as_dict(self) -> dict:
        se_shape, se_scale = self.se
        return {
            "shape": self.shape,
            "scale": self.scale,
            "shape_se": se_shape,
            "scale_se": se_scale,
            "n_excesses": self.n,
            "loglik": self.loglik,
        }


def _nll(theta: np.ndarray, y: np.ndarray, w: np.ndarray, wsum: float) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood of GPD excesses in (xi, log sigma), and its gradient."""
    xi, log_s = float(theta[0]), float(theta[1])
    s = np.exp(log_s)
    t = y / s
    if abs(xi) < _XI_ZERO:
        nll = wsum * log_s + float(w @ t)
        return nll, np.array([float(w @ (t * t)) / 2 - float(w @ t), wsum - float(w @ t)])
    z = 1.0 + xi * t
    if np.any(z <= 0):
        return np.inf, np.zeros(2)
    lz = np.log(z)
    nll = wsum * log_s + (1.0 + 1.0 / xi) * float(w @ lz)
    # d/dxi: -(1/xi^2) sum lz + (1 + 1/xi) sum t/z ; d/dlog s: wsum - (1 + 1/xi) sum xi t / z
    tz = t / z
    g_xi = -float(w @ lz) / xi**2 + (1.0 + 1.0 / xi) * float(w @ tz)
    g_ls = wsum - (1.0 + xi) * float(w @ tz)
    return nll, np.array([g_xi, g_ls])


def fit_gpd(
    excesses: np.ndarray, weights: np.ndarray | None = None, *, start: tuple[float, float] | None = None
) -> GPDFit:
    """Maximum-likelihood GPD fit of ``excesses`` (>= 0) with optional non-negative ``weights``.

    ``start`` (shape, scale) warm-starts a gradient search (a bootstrap refit starts from the full fit);
    without it the profile likelihood of Grimshaw (1993) is searched over its whole range.
    Raises :class:`~faceaudit.errors.InputError` for fewer than 3 excesses (or total weight < 3), a
    negative or non-finite excess, or all-equal excesses (no scale can be fitted).
    """
    y = np.asarray(excesses, dtype=np.float64).ravel()
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != y.shape:
        raise InputError("weights must align with the excesses")
    keep = w > 0
    y, w = y[keep], w[keep]
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise InputError("GPD excesses must be finite and >= 0 (scores minus a cutoff below them)")
    wsum = float(w.sum())
    if y.size < 3 or wsum < 3:
        raise InputError(f"a GPD fit needs at least 3 excesses, got {y.size}")
    if float(y.max()) <= 0 or np.ptp(y) == 0:
        raise InputError("all excesses are equal: the tail has no spread to fit a GPD to")
    # a warm start (a bootstrap refit near the full fit) is polished by L-BFGS-B; otherwise, and if
    # that fails, Grimshaw's profile search, which needs no start and cannot leave the support
    cand = _polish(y, w, wsum, start) if start is not None else None
    xi, s = cand if cand is not None else _profile_mle(y, w, wsum)
    cov = _covariance(xi, s, y, w, wsum)
    loglik = -_nll(np.array([xi, np.log(s)]), y, w, wsum)[0]
    return GPDFit(shape=xi, scale=s, n=wsum, loglik=float(loglik), cov=cov)


def _profile(theta: np.ndarray, y: np.ndarray, w: np.ndarray, wsum: float) -> tuple[np.ndarray, np.ndarray]:
    """Grimshaw's (1993) profile: with ``theta = xi / sigma``, ``xi(theta) = mean log(1 + theta y)``
    and the log-likelihood is ``-W (log(xi / theta) + 1 + xi)``. Returns (loglik, xi) per theta."""
    theta = np.atleast_1d(theta)
    lz = np.log1p(np.outer(theta, y))
    xi = (lz @ w) / wsum
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = -wsum * (np.log(xi / theta) + 1.0 + xi)
    ll = np.where(np.isfinite(ll) & (xi > -1.0) & (theta != 0), ll, -np.inf)
    return ll, xi


def _profile_mle(y: np.ndarray, w: np.ndarray, wsum: float) -> tuple[float, float]:
    """Maximise the profile likelihood over theta: a grid, then bounded Brent around the best point;
    the exponential (xi = 0) is the theta -> 0 limit and is compared too."""
    from scipy.optimize import minimize_scalar

    ymax = float(y.max())
    mean = float(w @ y) / wsum
    lo = -1.0 / ymax * (1 - 1e-9)
    # theta spans (-1/ymax, a few hundred / mean): fine near 0 and near the lower end
    neg = lo * (1 - np.geomspace(1e-9, 1, 60))
    pos = np.geomspace(1e-6, 1e3, 60) / mean
    grid = np.unique(np.r_[neg, lo * np.geomspace(1e-7, 1, 40), pos])
    grid = grid[grid != 0]
    ll, _ = _profile(grid, y, w, wsum)
    i = int(np.argmax(ll))
    a = grid[max(i - 1, 0)]
    b = grid[min(i + 1, grid.size - 1)]
    best_ll, best = ll[i], grid[i]
    if a < b:
        r = minimize_scalar(
            lambda t: -_profile(np.array([t]), y, w, wsum)[0][0],
            bounds=(a, b),
            method="bounded",
            options={"xatol": abs(best) * 1e-10 + 1e-300},
        )
        if np.isfinite(r.fun) and -r.fun > best_ll:
            best_ll, best = -r.fun, float(r.x)
    exp_ll = -wsum * (np.log(mean) + 1.0)
    if not np.isfinite(best_ll) or exp_ll >= best_ll:
        return 0.0, mean
    xi = float(_profile(np.array([best]), y, w, wsum)[1][0])
    return xi, xi / best


def _polish(y, w, wsum, start):
    xi0, s0 = start
    ymax = float(y.max())
    if xi0 < 0 and 1 + xi0 * ymax / s0 <= 0:
        return None

    def fun(th):
        if th[0] <= -0.999:
            return 1e300, np.zeros(2)
        v, g = _nll(th, y, w, wsum)
        return (v if np.isfinite(v) else 1e300), g

    from scipy.optimize import minimize  # here: a heavy import, needed only for a tail fit

    res = minimize(
        fun,
        np.array([xi0, np.log(s0)]),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 200},
    )
    return (float(res.x[0]), float(np.exp(res.x[1]))) if np.isfinite(res.fun) and res.fun < 1e299 else None


def _covariance(xi: float, s: float, y: np.ndarray, w: np.ndarray, wsum: float) -> np.ndarray:
    """Inverse observed information of (shape, scale), by central differences of the gradient."""
    theta = np.array([xi, np.log(s)])
    h = np.array([1e-5, 1e-5])
    H = np.empty((2, 2))
    for i in range(2):
        e = np.zeros(2)
        e[i] = h[i]
        gp = _nll(theta + e, y, w, wsum)[1]
        gm = _nll(theta - e, y, w, wsum)[1]
        H[:, i] = (gp - gm) / (2 * h[i])
    H = (H + H.T) / 2
    try:
        c = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full((2, 2), np.nan)
    if not np.all(np.isfinite(c)) or c[0, 0] < 0 or c[1, 1] < 0:
        return np.full((2, 2), np.nan)
    J = np.diag([1.0, s])  # from (xi, log s) to (xi, s)
    return J @ c @ J
