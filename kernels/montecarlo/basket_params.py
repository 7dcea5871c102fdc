"""Parameters of ``montecarlo.basket``: validation of the job's ``[params]`` table.

Pure Python (no NumPy, no Numba), so that job files can be checked where only the light install
is. Every error is a ``ParamError`` naming the key, down to the entry (``volatilities[2]``,
``correlation[1][0]``), the value and what was expected.

The correlation matrix is checked here and factored once: :func:`semidefinite_cholesky` is both
the positive semi-definiteness test and the factor ``L`` the simulation uses (``e = L z``). It
is computed in plain float64 arithmetic with ``math.fsum`` dot products, so ``L`` has the same
bits on every machine (a LAPACK factor could differ in its last bits between builds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo.params import product_names
from tessera.kernels.montecarlo.qmc_params import (
    PHILOX,
    Sampler,
    antithetic_default,
    parse_sampler,
    sampler_dict,
)
from tessera.kernels.validate import boolean, finite_number, integer_in, is_number, shown, suggest

PRODUCTS: tuple[str, ...] = ("basket_call", "basket_put", "geometric_basket_call", "exchange")
DEFAULT_PRODUCTS: tuple[str, ...] = ("basket_call",)
STRIKE_FREE: frozenset[str] = frozenset({"exchange"})  # products that ignore the strike

MAX_ASSETS = 64
MAX_PATHS = 2**53  # sample counts stay exact in float64 sums
MAX_STEPS = 100_000
SYMMETRY_TOL = 1e-12  # |corr[i][j] - corr[j][i]| allowed; the lower triangle is kept
DIAGONAL_TOL = 1e-12  # |corr[i][i] - 1| allowed; stored as exactly 1.0
PSD_TOL = 1e-10  # a Cholesky pivot in [-PSD_TOL, PSD_TOL] is a zero pivot (singular, PSD)

KEYS: tuple[str, ...] = (
    "paths",
    "steps",
    "spots",
    "volatilities",
    "weights",
    "correlation",
    "strike",
    "rate",
    "maturity",
    "products",
    "antithetic",
    "control_variate",
    "sampler",
    "replicates",
    "brownian_bridge",
)
REQUIRED: tuple[str, ...] = (
    "paths",
    "steps",
    "spots",
    "volatilities",
    "correlation",
    "rate",
    "maturity",
)

Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Params:
    """Validated basket parameters (risk-neutral measure, no dividends).

    ``n = len(spots)`` assets (1..64), each a GBM with lognormal volatility
    ``volatilities[a]`` per year; Brownian increments correlated by ``correlation`` (n x n,
    symmetric, unit diagonal, positive semi-definite). ``paths`` paths of ``steps`` equal
    steps to ``maturity`` (years); ``rate`` per year, continuously compounded; ``strike`` in
    currency units (``None`` when only ``exchange`` is priced).

    Products (discount ``D = exp(-rate * maturity)``, ``S_a = S_a(T)``):
    ``basket_call`` ``D max(sum_a w_a S_a - K, 0)``; ``basket_put`` ``D max(K - sum_a w_a S_a,
    0)``; ``geometric_basket_call`` ``D max(prod_a S_a ** w_a - K, 0)`` (weights must be
    positive; they are not normalised, so with ``sum w != 1`` the product is a different
    lognormal, e.g. weights [1, 1] price a call on S_1 S_2); ``exchange`` (n = 2)
    ``D max(S_1 - S_2, 0)``, weights and strike ignored.

    ``control_variate`` adjusts ``basket_call`` by the geometric basket call (its closed form
    is known); it needs positive weights and defaults to true when n >= 2 and every weight is
    positive, else false (with one asset the basket is a European option, priced exactly as
    ``montecarlo.gbm`` prices it). ``cholesky`` is the factor of ``correlation`` (derived, not
    compared).

    ``sampler`` is Philox or randomized Sobol (:mod:`qmc_params`; a path takes n ``steps``
    coordinates of a Sobol point, laid out in :mod:`qmc_basket`).
    """

    paths: int
    steps: int
    spots: tuple[float, ...]
    volatilities: tuple[float, ...]
    weights: tuple[float, ...]
    correlation: Matrix
    strike: float | None
    rate: float
    maturity: float
    products: tuple[str, ...] = DEFAULT_PRODUCTS
    antithetic: bool = True
    control_variate: bool = False
    sampler: Sampler = PHILOX
    cholesky: Matrix = field(default=(), compare=False, repr=False)

    @property
    def assets(self) -> int:
        """Number of assets n."""
        return len(self.spots)

    @property
    def samples(self) -> int:
        """Independent samples: paths, or path pairs with ``antithetic``."""
        return self.paths // 2 if self.antithetic else self.paths


# --- lists -------------------------------------------------------------------------------------


def _number_list(raw: Mapping[str, Any], key: str, n: int | None) -> tuple[float, ...]:
    """``raw[key]`` as a tuple of finite floats, ``n`` of them (any 1..MAX_ASSETS if None)."""
    value = raw[key]
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ParamError(key, f"expected a list of numbers, got {shown(value)}")
    if n is None and not 1 <= len(value) <= MAX_ASSETS:
        raise ParamError(key, f"expected 1 to {MAX_ASSETS} assets, got {len(value)}")
    if n is not None and len(value) != n:
        raise ParamError(key, f"has {len(value)} entries, expected {n} (one per entry of spots)")
    return tuple(finite_number({f"{key}[{i}]": v}, f"{key}[{i}]") for i, v in enumerate(value))


def _correlation(raw: Mapping[str, Any], n: int) -> Matrix:
    """The checked matrix: n lists of n numbers in [-1, 1], unit diagonal (to DIAGONAL_TOL,
    stored as 1.0), symmetric (to SYMMETRY_TOL, the lower triangle kept)."""
    value = raw["correlation"]
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or len(value) != n:
        size = len(value) if isinstance(value, (list, tuple)) else None
        got = f"{size} rows" if size is not None else shown(value)
        raise ParamError("correlation", f"expected an {n}x{n} list of lists (n = {n}), got {got}")
    rows: list[list[float]] = []
    for i, row in enumerate(value):
        key = f"correlation[{i}]"
        if isinstance(row, str) or not isinstance(row, (list, tuple)) or len(row) != n:
            got = f"{len(row)} entries" if isinstance(row, (list, tuple)) else shown(row)
            raise ParamError(key, f"expected a row of {n} numbers, got {got}")
        out = []
        for j, v in enumerate(row):
            k = f"correlation[{i}][{j}]"
            if not is_number(v):
                raise ParamError(k, f"expected a number in [-1, 1], got {shown(v)}")
            x = finite_number({k: v}, k)
            if not -1.0 <= x <= 1.0:
                raise ParamError(k, f"expected a correlation in [-1, 1], got {shown(v)}")
            out.append(x)
        rows.append(out)
    for i in range(n):
        if abs(rows[i][i] - 1.0) > DIAGONAL_TOL:
            raise ParamError(
                f"correlation[{i}][{i}]", f"expected 1 on the diagonal, got {rows[i][i]!r}"
            )
        rows[i][i] = 1.0
    for i in range(n):
        for j in range(i):
            if abs(rows[i][j] - rows[j][i]) > SYMMETRY_TOL:
                raise ParamError(
                    f"correlation[{i}][{j}]",
                    f"the matrix is not symmetric: correlation[{i}][{j}] = {rows[i][j]!r} but "
                    f"correlation[{j}][{i}] = {rows[j][i]!r} (tolerance {SYMMETRY_TOL:g})",
                )
            rows[j][i] = rows[i][j]
    return tuple(tuple(r) for r in rows)


# --- Cholesky ----------------------------------------------------------------------------------


class NotSemidefinite(ValueError):
    """The matrix has a negative Cholesky pivot (``row``, value ``pivot``), or a zero pivot at
    ``row`` with a nonzero entry below it in row ``other``."""

    def __init__(self, row: int, pivot: float, other: int | None = None, entry: float = 0.0):
        super().__init__(f"row {row}: pivot {pivot!r}")
        self.row, self.pivot, self.other, self.entry = row, pivot, other, entry


def semidefinite_cholesky(a: Sequence[Sequence[float]], tol: float = PSD_TOL) -> Matrix:
    """Lower-triangular ``L`` with ``L L^T = a`` for a symmetric positive semi-definite ``a``
    (rows in their given order, no pivoting, so ``L`` is lower-triangular in the assets' order).

    A pivot ``d`` of row k in ``[-tol, tol]`` counts as zero: column k of ``L`` is then zero,
    which is right only if the rest of column k of the Schur complement vanishes too (it must,
    for PSD: ``|s_ik| <= sqrt(d_k d_i)``); a larger entry there, or a pivot below ``-tol``,
    raises :class:`NotSemidefinite`. For ``[[1.0]]`` the factor is exactly ``[[1.0]]``.
    """
    n = len(a)
    low = [[0.0] * n for _ in range(n)]
    for k in range(n):
        d = a[k][k] - math.fsum(low[k][m] * low[k][m] for m in range(k))
        if d < -tol:
            raise NotSemidefinite(k, d)
        if d <= tol:  # singular direction: the column must vanish below the pivot too
            for i in range(k + 1, n):
                s = a[i][k] - math.fsum(low[i][m] * low[k][m] for m in range(k))
                if abs(s) > math.sqrt(tol):
                    raise NotSemidefinite(i, d, k, s)
            continue
        root = math.sqrt(d)
        low[k][k] = root
        for i in range(k + 1, n):
            s = a[i][k] - math.fsum(low[i][m] * low[k][m] for m in range(k))
            low[i][k] = s / root
    return tuple(tuple(r) for r in low)


def _positive_definite(a: Sequence[Sequence[float]], shift: float) -> bool:
    """Whether ``a - shift * I`` has a (strict) Cholesky factor."""
    n = len(a)
    low = [[0.0] * n for _ in range(n)]
    for k in range(n):
        d = a[k][k] - shift - math.fsum(low[k][m] * low[k][m] for m in range(k))
        if d <= 0.0:
            return False
        root = math.sqrt(d)
        low[k][k] = root
        for i in range(k + 1, n):
            low[i][k] = (a[i][k] - math.fsum(low[i][m] * low[k][m] for m in range(k))) / root
    return True


def smallest_eigenvalue(a: Sequence[Sequence[float]], tol: float = 1e-9) -> float:
    """The smallest eigenvalue of a symmetric matrix, to ``tol``, by bisection on whether
    ``a - lambda I`` is positive definite (Cholesky is stable there). Pure Python: meant for
    error messages (about 30 factorisations; under a second at n = 64)."""
    n = len(a)
    radius = max(sum(abs(x) for x in row) for row in a)  # Gershgorin: |lambda| <= radius
    lo, hi = -radius - 1.0, radius + 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if _positive_definite(a, mid):
            lo = mid
        else:
            hi = mid
    return lo if n else 0.0


def _factor(corr: Matrix) -> Matrix:
    try:
        return semidefinite_cholesky(corr)
    except NotSemidefinite as exc:
        k = exc.row
        if exc.other is None:
            where = (
                f"the leading {k + 1}x{k + 1} block (rows 0..{k}) has a negative Cholesky "
                f"pivot {exc.pivot:.6g} at row {k}"
            )
        else:
            where = (
                f"the leading {k + 1}x{k + 1} block (rows 0..{k}) is singular at row "
                f"{exc.other} yet row {k} is not a combination of rows 0..{exc.other} "
                f"(residual {exc.entry:.6g})"
            )
        raise ParamError(
            "correlation",
            f"is not positive semi-definite: {where}; its smallest eigenvalue is "
            f"{smallest_eigenvalue(corr):.6g} (tolerance {PSD_TOL:g})",
        ) from None


# --- the table ---------------------------------------------------------------------------------


def _products(raw: Mapping[str, Any], n: int) -> tuple[str, ...]:
    seen = product_names(raw, PRODUCTS, DEFAULT_PRODUCTS)
    if "exchange" in seen and n != 2:
        raise ParamError(
            "products",
            f"exchange needs exactly 2 assets, got {n} (its payoff is max(S_1 - S_2, 0))",
        )
    return tuple(seen)


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate a job's ``[params]`` mapping into :class:`Params`.

    Raises ``ParamError(key, message)`` for an unknown key (suggesting a close match), a
    missing required key, a wrong type (a bool is not a number; an int is accepted for a
    float), a value out of range, lists of mismatched lengths, or a correlation matrix that
    is not a symmetric positive semi-definite matrix with unit diagonal. Keys name the entry:
    ``spots[3]``, ``correlation[2][0]``.
    """
    if not isinstance(raw, Mapping):
        raise ParamError("params", f"expected a table of parameters, got {type(raw).__name__}")
    for key in raw:
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise ParamError(
                str(key),
                f"unknown parameter{suggest(str(key), KEYS)} (montecarlo.basket takes {known})",
            )
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        also = f" (also missing: {', '.join(f'params.{k}' for k in missing[1:])})"
        raise ParamError(missing[0], "is required" + (also if len(missing) > 1 else ""))

    paths = integer_in(raw, "paths", 2, MAX_PATHS)
    steps = integer_in(raw, "steps", 1, MAX_STEPS)
    spots = _number_list(raw, "spots", None)
    n = len(spots)
    for i, s in enumerate(spots):
        if s <= 0:
            raise ParamError(f"spots[{i}]", f"expected a price > 0, got {s!r}")
    volatilities = _number_list(raw, "volatilities", n)
    for i, v in enumerate(volatilities):
        if not 0 < v <= 5:
            raise ParamError(f"volatilities[{i}]", f"expected 0 < volatility <= 5, got {v!r}")
    weights = _number_list(raw, "weights", n) if "weights" in raw else (1.0 / n,) * n
    if not any(weights):
        raise ParamError("weights", "expected at least one nonzero weight")
    products = _products(raw, n)
    positive = all(w > 0 for w in weights)
    if "geometric_basket_call" in products and not positive:
        i = next(i for i, w in enumerate(weights) if w <= 0)
        raise ParamError(
            f"weights[{i}]",
            f"geometric_basket_call needs positive weights (prod S_a ** w_a), got {weights[i]!r}",
        )
    correlation = _correlation(raw, n)
    cholesky = _factor(correlation)

    strike: float | None = None
    if "strike" in raw:
        strike = finite_number(raw, "strike")
        if strike <= 0:
            raise ParamError("strike", f"expected a price > 0, got {strike!r}")
    elif any(p not in STRIKE_FREE for p in products):
        raise ParamError("strike", "is required (by every product but exchange)")
    rate = finite_number(raw, "rate")
    if abs(rate) > 1:
        raise ParamError("rate", f"expected a rate per year in [-1, 1], got {rate!r}")
    maturity = finite_number(raw, "maturity")
    if not 0 < maturity <= 100:
        raise ParamError("maturity", f"expected 0 < maturity <= 100 years, got {maturity!r}")

    sampler = parse_sampler(raw, paths, n * steps)
    antithetic = boolean(raw, "antithetic", antithetic_default(raw))
    if antithetic and (paths % 2 or paths < 4):
        raise ParamError(
            "paths",
            f"expected an even number >= 4 (two antithetic pairs) with antithetic = true, "
            f"got {paths}",
        )
    control_variate = boolean(raw, "control_variate", n >= 2 and positive)
    if control_variate and not positive:
        raise ParamError(
            "control_variate",
            "the geometric basket control needs positive weights; set control_variate = false",
        )
    return Params(
        paths=paths,
        steps=steps,
        spots=spots,
        volatilities=volatilities,
        weights=weights,
        correlation=correlation,
        strike=strike,
        rate=rate,
        maturity=maturity,
        products=products,
        antithetic=antithetic,
        control_variate=control_variate,
        sampler=sampler,
        cholesky=cholesky,
    )


def to_dict(params: Params) -> dict[str, Any]:
    """The canonical JSON-serialisable form: defaults filled in, floats as float, the
    correlation symmetric with unit diagonal. ``strike`` is present only when it was given,
    so ``parse(to_dict(p)) == p``."""
    out: dict[str, Any] = {
        "paths": params.paths,
        "steps": params.steps,
        "spots": [float(x) for x in params.spots],
        "volatilities": [float(x) for x in params.volatilities],
        "weights": [float(x) for x in params.weights],
        "correlation": [[float(x) for x in row] for row in params.correlation],
        "rate": float(params.rate),
        "maturity": float(params.maturity),
        "products": list(params.products),
        "antithetic": params.antithetic,
        "control_variate": params.control_variate,
    }
    if params.strike is not None:
        out["strike"] = float(params.strike)
    out.update(sampler_dict(params.sampler))
    return out
