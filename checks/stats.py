r"""Statistical verdict helpers (THEORY.md section 8, "statistical").

A statistical claim (S1, S2, S5, S6) is decided by Monte Carlo over seeds and one
exact or goodness-of-fit test at a stated significance ``level`` (RunOptions.level,
default 0.01). The outcome is one of

- ``consistent``: the test did **not** reject the claim at ``level`` (p_value >= level).
  This is *not* a proof: it says the simulated data are compatible with the claim,
  with the stated number of replications ``n``.
- ``rejected``: the test rejected the claim at ``level`` (p_value < level). If the
  claim were true, this would happen with probability at most ``level`` (exact for
  the binomial tests, asymptotically exact for Kolmogorov-Smirnov with continuous
  null distributions).

Throughout, ``level`` is a *significance* level (type-I error), so an interval
"at level 0.01" has confidence 1 - 0.01 = 99 %.

Functions
---------
clopper_pearson(k, n, level)         exact two-sided interval for a binomial proportion
ks_chi2(samples, df)                 KS statistic and p-value of samples against chi^2_df
ks_chi2_verdict(samples, df, level)  the same as a :class:`StatOutcome`
binomial_exceedance_verdict(k, n, delta, level)
                                     decide "P(failure) <= delta" from k failures in n trials
mean_ci(samples, level)              Student-t interval for a mean (S2-style comparisons)
mean_band_verdict(samples, target, rtol, level)
                                     decide "E[s] = target within relative tolerance rtol"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as _st

from proofs_numeric.errors import InvalidInput

StatStatus = Literal["consistent", "rejected"]

__all__ = [
    "StatOutcome",
    "clopper_pearson",
    "ks_chi2",
    "ks_chi2_verdict",
    "binomial_exceedance_verdict",
    "mean_ci",
    "mean_band_verdict",
    "check_level",
]


@dataclass(frozen=True)
class StatOutcome:
    """The result of one statistical test.

    Attributes
    ----------
    status : ``consistent`` (p_value >= level: not rejected) or ``rejected`` (p_value < level).
    p_value : the p-value of the test of the claim (the claim is the null hypothesis).
    level : the significance level the decision used.
    n : the number of replications (samples or Bernoulli trials) behind the test.
    test : which test ("ks-chi2", "binomial-exceedance", ...).
    statistic : the test statistic when there is one (KS distance, failure count, ...).
    details : test-specific numbers (interval limits, df, ...), JSON-safe.
    """

    status: StatStatus
    p_value: float
    level: float
    n: int
    test: str = ""
    statistic: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return self.status == "consistent"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (for InstanceResult.details or a report)."""
        out: dict[str, Any] = {
            "status": self.status,
            "p_value": float(self.p_value),
            "level": float(self.level),
            "n": int(self.n),
            "test": self.test,
        }
        if self.statistic is not None:
            out["statistic"] = float(self.statistic)
        out.update(self.details)
        return out


def check_level(level: float, *, what: str = "level") -> float:
    """Validate a significance level: a float in (0, 1)."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
        raise InvalidInput(f"{what} must be a number in (0, 1), got {what}={level!r}")
    lv = float(level)
    if not (0.0 < lv < 1.0) or not math.isfinite(lv):
        raise InvalidInput(f"{what} must be in (0, 1), got {what}={level!r}")
    return lv


def _check_count(k: int, n: int) -> tuple[int, int]:
    for name, v in (("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InvalidInput(f"{name} must be an integer, got {name}={v!r}")
    if n < 1:
        raise InvalidInput(f"n must be >= 1, got n={n}")
    if not 0 <= k <= n:
        raise InvalidInput(f"k must be in [0, n={n}], got k={k}")
    return int(k), int(n)


def clopper_pearson(k: int, n: int, level: float = 0.01) -> tuple[float, float]:
    r"""Exact (Clopper-Pearson) two-sided interval for a binomial proportion.

    .. math:: [B^{-1}(\alpha/2; k, n-k+1),\ B^{-1}(1-\alpha/2; k+1, n-k)],\quad \alpha = \text{level}

    (B^{-1} the Beta quantile),

    computed by ``scipy.stats.binomtest(k, n).proportion_ci(confidence_level=1 - level,
    method="exact")``. The interval covers the true proportion with probability
    at least 1 - level for every true proportion.

    Parameters
    ----------
    k : number of successes (0 <= k <= n).
    n : number of trials (>= 1).
    level : significance level in (0, 1); confidence is 1 - level.

    >>> lo, hi = clopper_pearson(0, 10, 0.05)
    >>> (lo, round(hi, 4))
    (0.0, 0.3085)
    """
    k, n = _check_count(k, n)
    lv = check_level(level)
    ci = _st.binomtest(k, n).proportion_ci(confidence_level=1.0 - lv, method="exact")
    return float(ci.low), float(ci.high)


def _one_sided_cp(k: int, n: int, level: float) -> tuple[float, float]:
    """One-sided exact limits at confidence 1 - level: (lower limit, upper limit)."""
    lo = float(_st.binomtest(k, n, alternative="greater").proportion_ci(1.0 - level, method="exact").low)
    hi = float(_st.binomtest(k, n, alternative="less").proportion_ci(1.0 - level, method="exact").high)
    return lo, hi


def binomial_exceedance_verdict(k: int, n: int, delta: float, level: float = 0.01) -> StatOutcome:
    r"""Decide the claim "P(failure) <= delta" from ``k`` failures in ``n`` independent trials.

    Null hypothesis (the claim): p <= delta. Exact one-sided binomial test,
    p_value = P(Bin(n, delta) >= k) (``scipy.stats.binomtest(k, n, delta, alternative="greater")``).

    - ``rejected`` iff p_value < level, equivalently iff the one-sided exact
      (Clopper-Pearson) *lower* limit of p at confidence 1 - level exceeds delta:
      the data show, at that level, that failures happen more often than delta.
    - ``consistent`` otherwise.

    ``details`` also gives the one-sided exact *upper* limit ``upper`` at confidence
    1 - level (the failure probability is at most ``upper`` at that confidence) and
    ``supported = upper <= delta``: True when the data positively support the claim
    (not only fail to reject it; this needs roughly n >= log(1/level)/delta trials
    with no failure).

    Parameters
    ----------
    k : number of failures. n : number of trials. delta : the claimed bound on P(failure), in [0, 1].
    level : significance level in (0, 1).

    >>> binomial_exceedance_verdict(0, 500, 0.05, 0.01).status
    'consistent'
    >>> binomial_exceedance_verdict(60, 500, 0.05, 0.01).status
    'rejected'
    """
    k, n = _check_count(k, n)
    lv = check_level(level)
    bad = isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating))
    if bad or not 0.0 <= float(delta) <= 1.0:
        raise InvalidInput(f"delta must be a probability in [0, 1], got delta={delta!r}")
    dl = float(delta)
    p = float(_st.binomtest(k, n, dl, alternative="greater").pvalue) if dl > 0 else (1.0 if k == 0 else 0.0)
    lower, upper = _one_sided_cp(k, n, lv)
    status: StatStatus = "rejected" if p < lv else "consistent"
    return StatOutcome(
        status=status,
        p_value=p,
        level=lv,
        n=n,
        test="binomial-exceedance",
        statistic=float(k),
        details={
            "failures": k,
            "delta": dl,
            "rate": k / n,
            "lower": lower,
            "upper": upper,
            "supported": bool(upper <= dl),
        },
    )


def _as_samples(samples: Sequence[float] | np.ndarray, what: str = "samples") -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64).ravel()
    if arr.size < 2:
        raise InvalidInput(f"{what} must hold at least 2 values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        i = int(np.argmin(np.isfinite(arr)))
        raise InvalidInput(f"{what} must be finite, got {what}[{i}]={arr[i]!r}")
    return arr


def ks_chi2(samples: Sequence[float] | np.ndarray, df: int) -> tuple[float, float]:
    r"""Kolmogorov-Smirnov test of ``samples`` against the chi^2 law with ``df`` degrees of freedom.

    .. math:: D_n = \sup_t |F_n(t) - F_{\chi^2_{df}}(t)|

    Returns (statistic, p_value) from ``scipy.stats.kstest(samples, chi2(df).cdf)``
    (exact distribution of D_n for small n, as scipy chooses).

    >>> import numpy as np
    >>> s, p = ks_chi2(np.random.default_rng(0).chisquare(3, 400), 3)
    >>> p > 0.01
    True
    """
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise InvalidInput(f"df must be an integer >= 1, got df={df!r}")
    arr = _as_samples(samples)
    res = _st.kstest(arr, _st.chi2(int(df)).cdf)
    return float(res.statistic), float(res.pvalue)


def ks_chi2_verdict(samples: Sequence[float] | np.ndarray, df: int, level: float = 0.01) -> StatOutcome:
    """KS goodness of fit to chi^2_df as an outcome: ``rejected`` iff p_value < level.

    ``consistent`` means the empirical law of the samples is not distinguishable from
    chi^2_df by KS at ``level`` with ``n = len(samples)`` replications.
    """
    lv = check_level(level)
    arr = _as_samples(samples)
    stat, p = ks_chi2(arr, df)
    status: StatStatus = "rejected" if p < lv else "consistent"
    return StatOutcome(
        status=status,
        p_value=p,
        level=lv,
        n=int(arr.size),
        test="ks-chi2",
        statistic=stat,
        details={"df": int(df), "sample_mean": float(arr.mean()), "expected_mean": float(df)},
    )


def mean_ci(samples: Sequence[float] | np.ndarray, level: float = 0.01) -> tuple[float, float, float]:
    r"""Student-t two-sided interval for the mean: (mean, lo, hi) at confidence 1 - level.

    .. math:: \bar s \pm t_{1-\alpha/2, n-1}\, s_n / \sqrt{n}

    Asymptotically exact for i.i.d. samples with finite variance (not exact for
    skewed laws at small n: use enough replications).
    """
    lv = check_level(level)
    arr = _as_samples(samples)
    n = arr.size
    mean = float(arr.mean())
    se = float(arr.std(ddof=1) / math.sqrt(n))
    t = float(_st.t.ppf(1.0 - lv / 2.0, n - 1))
    return mean, mean - t * se, mean + t * se


def mean_band_verdict(
    samples: Sequence[float] | np.ndarray, target: float, rtol: float, level: float = 0.01
) -> StatOutcome:
    r"""Decide "E[s] = target within relative tolerance rtol" from i.i.d. samples.

    Null hypothesis (the claim): the true mean lies in the band
    [target (1 - rtol), target (1 + rtol)]. With the Student-t interval of :func:`mean_ci`
    at confidence 1 - level:

    - ``rejected`` iff that interval misses the band entirely (the data show, at this level,
      that the mean is outside the stated tolerance);
    - ``consistent`` otherwise.

    p_value = 2 P(T_{n-1} >= dist / se) with dist the distance from the sample mean to the
    band (1 when the mean is inside), capped at 1; rejected iff p_value < level, which is the
    same decision. ``rtol`` is the stated tolerance of the claim (e.g. the O(1/n) bias of an
    asymptotic formula), not a fudge: report it with the verdict.
    """
    lv = check_level(level)
    arr = _as_samples(samples)
    if not (isinstance(target, (int, float, np.floating)) and math.isfinite(float(target)) and target > 0):
        raise InvalidInput(f"target must be a finite number > 0, got target={target!r}")
    if not (isinstance(rtol, (int, float, np.floating)) and 0.0 <= float(rtol) < 1.0):
        raise InvalidInput(f"rtol must be in [0, 1), got rtol={rtol!r}")
    n = arr.size
    mean, lo, hi = mean_ci(arr, lv)
    se = float(arr.std(ddof=1) / math.sqrt(n))
    b_lo, b_hi = float(target) * (1 - float(rtol)), float(target) * (1 + float(rtol))
    dist = max(b_lo - mean, mean - b_hi, 0.0)
    if dist == 0.0:
        p = 1.0
    elif se == 0.0:
        p = 0.0
    else:
        p = min(1.0, 2.0 * float(_st.t.sf(dist / se, n - 1)))
    status: StatStatus = "rejected" if p < lv else "consistent"
    return StatOutcome(
        status=status,
        p_value=p,
        level=lv,
        n=int(n),
        test="mean-in-band (Student t)",
        statistic=mean,
        details={
            "mean": mean, "ci_low": lo, "ci_high": hi, "target": float(target), "rtol": float(rtol),
            "band_low": b_lo, "band_high": b_hi, "ratio": mean / float(target),
        },
    )
