r"""Statistical verdict helpers (docs/theory.md section 9, "statistical").

A statistical claim (S1, S2, S3, S5, S6) is decided by Monte Carlo over seeds and one
exact or goodness-of-fit test per instance at a stated significance ``level``
(RunOptions.level, default 0.01). Over N instances the N tests are one family: the claim's
verdict controls the family-wise error (the probability of rejecting a true claim on at least
one instance) at ``level`` by Holm's step-down correction (:func:`correct_family`,
:func:`family_aggregate`; one implementation for every statistical claim). The outcome is one of

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
correct_family(p_values, level, method)
                                     Holm (default) or Bonferroni family-wise correction
family_aggregate(claim, results, opts)
                                     a claim's verdict over instances with the correction applied
sim_constant(opts, claim, name, inst, ...), sim_int_constant(...)
                                     a claim constant as a simulation parameter (exact text -> float, int)
replications(opts, default, quick)   RunOptions.replications, validated, or the claim's default
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats as _st

from proofs_numeric.errors import InvalidInput

if TYPE_CHECKING:
    from proofs_numeric.instance import Instance

    from .registry import Claim, InstanceResult, RunOptions
    from .verdict import Verdict

StatStatus = Literal["consistent", "rejected"]
CorrectionMethod = Literal["holm", "bonferroni"]
#: the family-wise correction every statistical aggregate applies unless told otherwise
DEFAULT_CORRECTION: CorrectionMethod = "holm"

__all__ = [
    "StatOutcome",
    "clopper_pearson",
    "ks_chi2",
    "ks_chi2_verdict",
    "binomial_exceedance_verdict",
    "mean_ci",
    "mean_band_verdict",
    "check_level",
    "FamilyCorrection",
    "correct_family",
    "family_aggregate",
    "sim_constant",
    "sim_int_constant",
    "replications",
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

    Null hypothesis (the claim): the true mean lies in the band [a, b] = [target (1 - rtol),
    target (1 + rtol)], width w = b - a. Statistic: the distance D = max(a - \bar s, \bar s - b, 0)
    of the sample mean to the band, in units of its standard error se = s_n / \sqrt n. The p-value
    is the largest probability, over every mean in the band, of a distance at least the observed one:

    .. math:: p = \sup_{\mu \in [a, b]} P_\mu(D \ge \delta) = F_{n-1}(\delta / se) + F_{n-1}((\delta + w) / se)

    (F_{n-1} the Student-t survival function; the supremum is attained at the band's edges, where
    one tail is the near side and the other the far side), and p = 1 when the mean lies in the band.
    ``rejected`` iff p < level. Size: exactly ``level`` for a mean on the band's edge (Gaussian
    samples, Student-t approximation otherwise: asymptotically exact), less inside the band. (The
    rule "the 1 - level Student-t interval misses the band", used before, had size level / 2.)

    ``details`` also report the two-sided Student-t interval for the mean at confidence 1 - level
    (``ci_low``, ``ci_high``: for display; the decision is the p-value). ``rtol`` is the stated
    tolerance of the claim (e.g. the O(1/n) bias of an asymptotic formula), not a fudge: report it
    with the verdict.

    >>> import numpy as np
    >>> s = np.random.default_rng(0).normal(1.0, 0.1, 200)
    >>> mean_band_verdict(s, 1.0, 0.05, 0.01).status, mean_band_verdict(s, 2.0, 0.05, 0.01).status
    ('consistent', 'rejected')
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
    width = b_hi - b_lo
    dist = max(b_lo - mean, mean - b_hi, 0.0)
    if dist == 0.0:
        p = 1.0
    elif se == 0.0:
        p = 0.0
    else:
        p = min(1.0, float(_st.t.sf(dist / se, n - 1)) + float(_st.t.sf((dist + width) / se, n - 1)))
    status: StatStatus = "rejected" if p < lv else "consistent"
    return StatOutcome(
        status=status,
        p_value=p,
        level=lv,
        n=int(n),
        test="mean-in-band (Student t, sup over the band)",
        statistic=mean,
        details={
            "mean": mean, "se": se, "ci_low": lo, "ci_high": hi, "target": float(target), "rtol": float(rtol),
            "band_low": b_lo, "band_high": b_hi, "ratio": mean / float(target),
        },
    )


# ----------------------------------------------------------------- multiplicity
@dataclass(frozen=True)
class FamilyCorrection:
    """A family of tests corrected for multiplicity (family-wise error <= ``level``).

    Attributes (one entry per hypothesis, in the order given)
    ----------
    method : ``holm`` (step-down) or ``bonferroni``.
    level : the family-wise level.
    p_values : the raw p-values.
    adjusted : the adjusted p-values (hypothesis i is rejected iff adjusted[i] < level).
    thresholds : the level the raw p-value was compared with (Holm: level / (N - rank), rank the
        0-based position in ascending order; Bonferroni: level / N).
    rejected : which hypotheses the correction rejects.
    """

    method: str
    level: float
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    thresholds: tuple[float, ...]
    rejected: tuple[bool, ...]

    @property
    def size(self) -> int:
        return len(self.p_values)

    @property
    def any_rejected(self) -> bool:
        return any(self.rejected)

    @property
    def p_value(self) -> float:
        """The family's p-value: the smallest adjusted p-value (1 for an empty family)."""
        return min(self.adjusted, default=1.0)

    @property
    def status(self) -> StatStatus:
        return "rejected" if self.any_rejected else "consistent"


def correct_family(
    p_values: Sequence[float] | np.ndarray, level: float, method: str = DEFAULT_CORRECTION
) -> FamilyCorrection:
    r"""Correct N p-values so that the family-wise error is at most ``level``.

    Holm (1979), step-down: sort p_(1) <= ... <= p_(N); reject H_(1), ..., H_(k-1) where k is the
    first rank with p_(k) >= level / (N - k + 1). Adjusted p-values
    :math:`	ilde p_{(i)} = \max_{j \le i} \min(1, (N - j + 1) p_{(j)})`; H_i is rejected iff
    :math:`	ilde p_i <` level. Bonferroni: :math:`	ilde p_i = \min(1, N p_i)`. Both control the
    family-wise error at ``level`` for any dependence between the tests; Holm rejects a superset of
    Bonferroni's hypotheses, and the family as a whole (some H_i rejected) exactly when Bonferroni
    does (min p < level / N).

    >>> f = correct_family([0.004, 0.02, 0.5], 0.05)
    >>> f.rejected, [round(a, 3) for a in f.adjusted]
    ((True, True, False), [0.012, 0.04, 0.5])
    """
    if method not in ("holm", "bonferroni"):
        raise InvalidInput(f"method must be 'holm' or 'bonferroni', got method={method!r}")
    lv = check_level(level)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    bad = ~(np.isfinite(p) & (p >= 0.0) & (p <= 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"p_values must lie in [0, 1], got p_values[{i}]={p[i]!r}")
    n = p.size
    if method == "bonferroni":
        adj = np.minimum(1.0, n * p)
        thr = np.full(n, lv / n) if n else np.empty(0)
    else:
        order = np.argsort(p, kind="stable")
        mult = n - np.arange(n)
        adj_sorted = np.minimum(1.0, np.maximum.accumulate(mult * p[order])) if n else np.empty(0)
        adj = np.empty(n)
        adj[order] = adj_sorted
        thr = np.empty(n)
        thr[order] = lv / mult
    return FamilyCorrection(
        method=method,
        level=lv,
        p_values=tuple(float(v) for v in p),
        adjusted=tuple(float(v) for v in adj),
        thresholds=tuple(float(v) for v in thr),
        rejected=tuple(bool(a < lv) for a in adj),
    )


#: the per-instance statuses a statistical test decides (the others are left as they are)
_TESTED = ("consistent", "rejected")


def family_aggregate(
    claim: Claim, results: list[InstanceResult], opts: RunOptions, *, method: str = DEFAULT_CORRECTION
) -> Verdict:
    """A statistical claim's verdict over instances, the family-wise error controlled at ``opts.level``.

    Every instance whose test ran (status consistent or rejected, with a p-value) is one member of
    the family; :func:`correct_family` decides which are rejected, and each such instance's status,
    margin (adjusted p - level) and counterexample follow the corrected decision (the uncorrected
    status is kept in ``details["status_uncorrected"]``). Skipped, inconclusive and error instances
    are not tested and stay as they are. The rest is :func:`checks.runner.default_aggregate`, with

    - ``p_value``: the family's smallest adjusted p-value (compared with ``level``);
    - ``details["multiplicity"]``: the method, the level, the family size, the rejected instances and
      per instance its p-value, adjusted p-value, the level it was compared with and the decision;
    - a message that states the correction, the smallest p-value and the level it was compared with.
    """
    from .runner import default_aggregate

    level = check_level(opts.level)
    tested = [i for i, r in enumerate(results) if r.status in _TESTED and r.p_value is not None]
    fam = correct_family([float(results[i].p_value) for i in tested], level, method)  # type: ignore[arg-type]
    out = list(results)
    for j, i in enumerate(tested):
        r, rej = results[i], fam.rejected[j]
        details = {**r.details, "status_uncorrected": r.status, "p_adjusted": fam.adjusted[j],
                   "threshold": fam.thresholds[j], "correction": method}
        out[i] = replace(r, status="rejected" if rej else "consistent", margin=fam.adjusted[j] - level,
                         counterexample=r.counterexample if rej else None, details=details)
    v = default_aggregate(claim, out, opts)
    if not tested:
        return v
    rows = [{"instance": results[i].instance, "p_value": fam.p_values[j], "p_adjusted": fam.adjusted[j],
             "threshold": fam.thresholds[j], "rejected": fam.rejected[j]} for j, i in enumerate(tested)]
    v.p_value, v.level = fam.p_value, level
    v.details["multiplicity"] = {
        "method": method, "level": level, "family_size": fam.size,
        "rejected": [row["instance"] for row in rows if row["rejected"]],
        "statement": f"family-wise error <= {level:g} over {fam.size} tested instance(s) ({_NAMES[method]})",
        "per_instance": rows,
    }
    j_min = int(np.argmin(fam.p_values))
    v.message += (
        f"; {_NAMES[method]} over {fam.size} instance(s) at family-wise level {level:g}: smallest p = "
        f"{fam.p_values[j_min]:.3g} ({rows[j_min]['instance']}) compared with {fam.thresholds[j_min]:.3g} "
        f"(= {level:g}/{round(level / fam.thresholds[j_min])}), adjusted p = {fam.adjusted[j_min]:.3g}; "
        f"{sum(fam.rejected)} rejected"
    )
    return v


_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni"}


# ------------------------------------------------------- simulation parameters
def sim_constant(
    opts: RunOptions, claim: Claim, name: str, inst: Instance | None = None, *,
    minimum: float | None = None, positive: bool = False, env: Mapping[str, Any] | None = None,
) -> float:
    """Claim constant ``name`` as a simulation parameter: read exactly by
    :func:`checks.constants.constant` (the run's override or the registry default, an expression
    in the instance's d, K, m, beta and the names of ``env``) and returned as its nearest double.
    A simulation draws with float64 parameters; nothing is certified with this value.
    Raises InvalidInput naming the constant when it is not finite, below ``minimum`` or not > 0
    when ``positive``."""
    const, env_all = _sim_const(opts, claim, name, inst, env)
    val = const.float(env_all)
    _check_sim(claim, name, const.text, val, minimum, positive)
    return val


def sim_int_constant(
    opts: RunOptions, claim: Claim, name: str, inst: Instance | None = None, *,
    minimum: int | None = None, env: Mapping[str, Any] | None = None,
) -> int:
    """Like :func:`sim_constant` for a count (pairs, rounds): the exact value must be an integer."""
    const, env_all = _sim_const(opts, claim, name, inst, env)
    exact = const.exact(env_all)
    if exact is None or exact.denominator != 1:
        raise InvalidInput(f"constants.{claim.id}.{name} must be an integer, got {name}={const.text!r}")
    _check_sim(claim, name, const.text, float(exact), minimum, False)
    return int(exact)


def _sim_const(
    opts: RunOptions, claim: Claim, name: str, inst: Instance | None, env: Mapping[str, Any] | None
) -> tuple[Any, dict[str, Any]]:
    from .constants import constant, instance_env

    env_all = {**(instance_env(inst) if inst is not None else {}), **(env or {})}
    return constant(opts, claim, name, env_all), env_all


def _check_sim(claim: Claim, name: str, text: str, val: float, minimum: float | None, positive: bool) -> None:
    key = f"constants.{claim.id}.{name}"
    if not math.isfinite(val):
        raise InvalidInput(f"{key} must be finite, got {name}={text!r}")
    if minimum is not None and val < minimum:
        raise InvalidInput(f"{key} must be >= {minimum:g}, got {name}={text!r} = {val:g}")
    if positive and not val > 0:
        raise InvalidInput(f"{key} must be > 0, got {name}={text!r} = {val:g}")


def replications(opts: RunOptions, default: int, quick: int) -> int:
    """``opts.replications`` (an integer >= 2) or the claim's default (``quick`` in a quick run)."""
    if opts.replications is None:
        return quick if opts.quick else default
    r = opts.replications
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 2:
        raise InvalidInput(f"replications must be an integer >= 2, got replications={r!r}")
    return int(r)
