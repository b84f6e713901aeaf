"""Statistics for feature-flag experiments (treatment groups).

Pure: no database, no clock, no I/O, no third-party dependency (``math`` and
``statistics.NormalDist`` only). Inputs are per-variant summary statistics that a
service can compute with SQL aggregates:

* conversion metrics: ``ConversionSummary(n, conversions)``;
* numeric metrics (ratings, latency): ``NumericSummary(n, sum, sum_squares)``.

What it computes, for one metric:

* per variant: count, mean (the rate for conversions) and standard error — ``describe``;
* each treatment against the control, fixed horizon — ``compare``: absolute and relative
  difference, a two-sided confidence interval and a p-value. Numeric metrics use Welch's
  t test with Welch–Satterthwaite degrees of freedom; conversion metrics the unpooled
  normal approximation (two-proportion z test). The relative interval uses the delta
  method with the same critical value;
* Bayesian chance to beat control and expected loss — ``bayesian``: Beta(1 + conversions,
  1 + failures) posteriors for conversions (exact series while any posterior parameter is
  at most ``EXACT_BETA_LIMIT``, normal approximation of the difference beyond that),
  flat-prior normal posteriors of the means for numeric metrics;
* sample-ratio mismatch — ``sample_ratio_mismatch``: chi-square goodness of fit of the
  exposures against the configured split;
* always-valid (sequential) inference — ``always_valid``: the mixture sequential
  probability ratio test (mSPRT) of Johari, Pekelis and Walsh with a normal mixture; its
  p-value and confidence sequence stay valid however often one looks;
* a guardrail decision for the rollout worker — ``guardrail``;
* all of it for an experiment at once — ``analyze``.

Student's t and chi-square tail probabilities are computed from the regularized incomplete
beta and gamma functions (continued fractions and series, as in Numerical Recipes §6.2 and
§6.4); quantiles of t by safeguarded Newton iteration. The tests check them against SciPy.

Bad input raises ``ValueError``; data that are valid but not yet enough for a statistic
(no exposures, a single unit, zero variance in both arms, a zero control mean for a
relative change) raise ``InsufficientData``, a ``ValueError`` subclass. No NaN leaves this
module.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist
from typing import Literal

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_SRM_THRESHOLD",
    "DEFAULT_TUNING_N",
    "EXACT_BETA_LIMIT",
    "BayesianResult",
    "Comparison",
    "ConversionSummary",
    "Direction",
    "ExperimentAnalysis",
    "GuardrailResult",
    "InsufficientData",
    "NumericSummary",
    "SampleRatioResult",
    "SequentialResult",
    "Summary",
    "TreatmentResult",
    "VariantStats",
    "always_valid",
    "analyze",
    "bayesian",
    "chi2_sf",
    "compare",
    "describe",
    "guardrail",
    "mixing_variance",
    "sample_ratio_mismatch",
    "t_isf",
    "t_sf",
]

DEFAULT_LEVEL = 0.95
DEFAULT_SRM_THRESHOLD = 0.001
# Total units (both arms) at which the default confidence sequence is tightest; the
# default of GrowthBook's sequential testing. Any positive value keeps the guarantee.
DEFAULT_TUNING_N = 5000
# Largest Beta parameter for which P(treatment > control) is summed exactly; beyond it
# (every parameter larger) the posteriors are normal to within ~0.2 % in probability.
EXACT_BETA_LIMIT = 10_000

Direction = Literal["increase_is_bad", "decrease_is_bad"]

_NORMAL = NormalDist()
_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 100_000
# Beyond this many degrees of freedom Student's t is the normal distribution to ~1e-8.
_T_NORMAL_DF = 1e8


class InsufficientData(ValueError):
    """Valid input that does not (yet) support the requested statistic."""


# --- inputs --------------------------------------------------------------------------------


def _as_count(value: object, what: str) -> int:
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        if not isinstance(value, float | Decimal):
            raise ValueError(f"{what} must be a whole number, got {value!r}") from None
        if not math.isfinite(float(value)) or value != int(value):
            raise ValueError(f"{what} must be a whole number, got {value!r}") from None
        count = int(value)
    if count < 0:
        raise ValueError(f"{what} must not be negative, got {count}")
    return count


def _as_real(value: object, what: str) -> float:
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def _check_level(level: float) -> float:
    level = _as_real(level, "level")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    return level


@dataclass(frozen=True, slots=True)
class ConversionSummary:
    """A conversion metric for one variant: ``n`` exposed units, ``conversions`` of them
    converted (``COUNT(*)``, ``COUNT(*) FILTER (WHERE converted)``)."""

    n: int
    conversions: int

    def __post_init__(self) -> None:
        n = _as_count(self.n, "n")
        conversions = _as_count(self.conversions, "conversions")
        if conversions > n:
            raise ValueError(f"conversions ({conversions}) must not exceed n ({n})")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "conversions", conversions)


@dataclass(frozen=True, slots=True)
class NumericSummary:
    """A numeric metric for one variant: ``n`` units, the ``sum`` of their values and the
    ``sum_squares`` of their values (``COUNT(x)``, ``SUM(x)``, ``SUM(x * x)``)."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n = _as_count(self.n, "n")
        total = _as_real(self.sum, "sum")
        squares = _as_real(self.sum_squares, "sum_squares")
        if squares < 0:
            raise ValueError(f"sum_squares must not be negative, got {squares}")
        if n == 0 and (total != 0 or squares != 0):
            raise ValueError("sum and sum_squares must be 0 when n is 0")
        # Cauchy–Schwarz: sum² ≤ n · sum_squares, up to rounding in the aggregates.
        if total * total > n * squares * (1 + 1e-9) + 1e-300:
            raise ValueError("inconsistent summary: sum² exceeds n · sum_squares")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", squares)


Summary = ConversionSummary | NumericSummary


def _moments(summary: Summary) -> tuple[int, float | None, float | None]:
    """(n, mean, variance of one unit) — ``None`` where undefined."""
    n = summary.n
    if isinstance(summary, ConversionSummary):
        if n == 0:
            return 0, None, None
        rate = summary.conversions / n
        return n, rate, rate * (1.0 - rate)
    if not isinstance(summary, NumericSummary):
        raise ValueError(f"expected a ConversionSummary or NumericSummary, got {summary!r}")
    if n == 0:
        return 0, None, None
    mean = summary.sum / n
    if n < 2:
        return n, mean, None
    # Sample variance (n − 1); clamp the rounding error of sum_squares − sum·mean at 0.
    variance = max(0.0, (summary.sum_squares - summary.sum * mean) / (n - 1))
    return n, mean, variance


def _pair(control: Summary, treatment: Summary) -> bool:
    """True for conversion metrics; checks that both sides are of one kind."""
    for side in (control, treatment):
        if not isinstance(side, ConversionSummary | NumericSummary):
            raise ValueError(f"expected a ConversionSummary or NumericSummary, got {side!r}")
    if type(control) is not type(treatment):
        raise ValueError("control and treatment must be summaries of the same metric kind")
    return isinstance(control, ConversionSummary)


@dataclass(frozen=True, slots=True)
class _Arms:
    conversion: bool
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    var_control: float  # variance of the mean (squared standard error)
    var_treatment: float
    df: float | None  # Welch–Satterthwaite; None for the normal approximation


def _arms(control: Summary, treatment: Summary) -> _Arms:
    conversion = _pair(control, treatment)
    sides = []
    for label, summary in (("control", control), ("treatment", treatment)):
        n, mean, variance = _moments(summary)
        if n == 0 or mean is None:
            raise InsufficientData(f"{label} has no exposed units")
        if variance is None:
            raise InsufficientData(f"{label} needs at least 2 units to estimate a variance")
        sides.append((n, mean, variance / n))
    (nc, mc, vc), (nt, mt, vt) = sides
    if vc + vt <= 0.0:
        raise InsufficientData("both variants have zero variance; the difference has no error")
    df = None
    if not conversion:
        # Welch–Satterthwaite, (vc + vt)² / (vc²/(nc − 1) + vt²/(nt − 1)), in shares of the
        # total so that it cannot overflow; a zero-variance side contributes nothing.
        share_c, share_t = vc / (vc + vt), vt / (vc + vt)
        df = 1.0 / (share_c * share_c / (nc - 1) + share_t * share_t / (nt - 1))
    return _Arms(conversion, nc, nt, mc, mt, vc, vt, df)


# --- special functions ---------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float, y: float) -> tuple[float, float]:
    """Regularized incomplete beta ``(I_x(a, b), 1 − I_x(a, b))`` with ``y = 1 − x``
    passed separately so neither tail loses precision."""
    if x <= 0.0:
        return 0.0, 1.0
    if y <= 0.0:
        return 1.0, 0.0
    log_x = math.log(x) if x < 0.5 else math.log1p(-y)
    log_y = math.log(y) if y < 0.5 else math.log1p(-x)
    log_front = -_log_beta(a, b) + a * log_x + b * log_y
    if x < (a + 1.0) / (a + b + 2.0):
        lower = math.exp(log_front) * _betacf(a, b, x) / a
        return lower, 1.0 - lower
    upper = math.exp(log_front) * _betacf(b, a, y) / b
    return 1.0 - upper, upper


def _gammainc(a: float, x: float) -> tuple[float, float]:
    """Regularized incomplete gamma ``(P(a, x), Q(a, x))``: series below ``a + 1``,
    continued fraction above."""
    if x <= 0.0:
        return 0.0, 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        ap, term = a, 1.0 / a
        total = term
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                lower = total * math.exp(log_front)
                return lower, 1.0 - lower
        raise ArithmeticError(f"incomplete gamma series did not converge (a={a}, x={x})")
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER + 1):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            upper = math.exp(log_front) * h
            return 1.0 - upper, upper
    raise ArithmeticError(f"incomplete gamma fraction did not converge (a={a}, x={x})")


def _log_gamma_ratio(x: float, d: float) -> float:
    """``lgamma(x + d) − lgamma(x)`` without the cancellation of two huge numbers when x is
    large (Stirling's series; the first omitted term is below 1e-20 for x ≥ 1e4)."""
    if x < 1e4:
        return math.lgamma(x + d) - math.lgamma(x)

    def tail(y: float) -> float:
        return 1.0 / (12.0 * y) - 1.0 / (360.0 * y**3)

    return (x + d - 0.5) * math.log1p(d / x) + d * math.log(x) - d + tail(x + d) - tail(x)


def _log_beta(a: float, b: float) -> float:
    """``ln B(a, b)``, accurate when one argument is large."""
    small, large = (a, b) if a <= b else (b, a)
    return math.lgamma(small) - _log_gamma_ratio(large, small)


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _normal_isf(q: float) -> float:
    return -_NORMAL.inv_cdf(q)


def t_sf(t: float, df: float) -> float:
    """Upper tail ``P(T > t)`` of Student's t with ``df`` (> 0, not necessarily whole)
    degrees of freedom."""
    if not df > 0 or math.isinf(df) or math.isnan(df):
        raise ValueError(f"degrees of freedom must be positive and finite, got {df}")
    if df > _T_NORMAL_DF:
        return _normal_sf(t)
    t2 = t * t
    # P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2)
    two_sided, _ = _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return 0.5 * two_sided if t >= 0 else 1.0 - 0.5 * two_sided


def _t_two_sided_p(t: float, df: float) -> float:
    if df > _T_NORMAL_DF:
        return math.erfc(abs(t) / math.sqrt(2.0))
    t2 = t * t
    p, _ = _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return min(1.0, max(0.0, p))


def _t_log_pdf(t: float, df: float) -> float:
    return (
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )


def t_isf(q: float, df: float) -> float:
    """The ``t`` with ``P(T > t) = q`` (the inverse survival function; ``t_isf(0.025, df)``
    is the two-sided 95 % critical value)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be strictly between 0 and 1, got {q}")
    if not df > 0 or math.isinf(df) or math.isnan(df):
        raise ValueError(f"degrees of freedom must be positive and finite, got {df}")
    if q > 0.5:
        return -t_isf(1.0 - q, df)
    if q == 0.5:
        return 0.0
    z = _normal_isf(q)
    if df > _T_NORMAL_DF:
        return z
    # Start from the Cornish–Fisher expansion, then Newton on ln P(T > t) (nearly linear in
    # the tail), kept inside a bracket that every evaluation narrows.
    t = z + (z**3 + z) / (4.0 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96.0 * df * df)
    lo, hi = 0.0, math.inf
    log_q = math.log(q)
    for _ in range(500):
        sf = t_sf(t, df)
        if sf == q:
            return t
        if sf > q:
            lo = t
        else:
            hi = t
        candidate = math.nan
        if sf > 0.0:
            log_sf = math.log(sf)
            # d/dt ln sf = −pdf / sf
            candidate = t + (log_sf - log_q) / math.exp(_t_log_pdf(t, df) - log_sf)
        if not lo < candidate < hi:
            candidate = 2.0 * t if math.isinf(hi) else 0.5 * (lo + hi)
        if abs(candidate - t) <= 1e-13 * abs(candidate):
            return candidate
        t = candidate
    raise ArithmeticError(f"t quantile did not converge (q={q}, df={df})")


def chi2_sf(statistic: float, df: float) -> float:
    """Upper tail ``P(X > statistic)`` of the chi-square distribution with ``df`` degrees
    of freedom."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if statistic <= 0.0:
        return 1.0
    if math.isinf(statistic):
        return 0.0
    _, upper = _gammainc(df / 2.0, statistic / 2.0)
    return min(1.0, max(0.0, upper))


def _critical(level: float, df: float | None) -> float:
    """Two-sided critical value: Student's t with ``df`` or the standard normal."""
    tail = (1.0 - level) / 2.0
    return _normal_isf(tail) if df is None else t_isf(tail, df)


# --- 1. per variant ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariantStats:
    """One variant: ``mean`` is the conversion rate for conversion metrics. ``variance``
    is the variance of one unit (p(1 − p), or the sample variance with n − 1) and
    ``std_error`` the standard error of the mean. ``None`` where not defined yet (no units;
    for numeric metrics a single unit has a mean but no variance)."""

    variant: str
    n: int
    mean: float | None
    variance: float | None
    std_error: float | None


def describe(variant: str, summary: Summary) -> VariantStats:
    """Count, mean and standard error of one variant."""
    n, mean, variance = _moments(summary)
    std_error = None if variance is None else math.sqrt(variance / n)
    return VariantStats(variant, n, mean, variance, std_error)


# --- 2. fixed-horizon comparison ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment against control at a fixed horizon.

    ``difference`` = mean_treatment − mean_control with ``ci_low``/``ci_high`` at ``level``;
    ``relative_difference`` = difference / |mean_control| (the lift; its sign is the sign of
    the difference) with a delta-method interval, all ``None`` when the control mean is 0.
    ``statistic`` is t (``method`` "welch_t", with ``df``) or z ("two_proportion_z", ``df``
    None); ``p_value`` is two-sided for H0: no difference."""

    method: Literal["welch_t", "two_proportion_z"]
    level: float
    mean_control: float
    mean_treatment: float
    difference: float
    std_error: float
    ci_low: float
    ci_high: float
    relative_difference: float | None
    relative_std_error: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None
    statistic: float
    df: float | None
    p_value: float


def _relative(arms: _Arms) -> tuple[float, float] | None:
    """Relative difference (mT − mC)/|mC| and its delta-method standard error."""
    mc, mt = arms.mean_control, arms.mean_treatment
    if mc == 0.0:
        return None
    scale = abs(mc)
    relative = (mt - mc) / scale
    # se_rel² = se_T²/m_C² + m_T² se_C²/m_C⁴, written to avoid under/overflow of m_C⁴.
    std_error = math.hypot(
        math.sqrt(arms.var_treatment) / scale,
        (mt / scale) * (math.sqrt(arms.var_control) / scale),
    )
    if not (math.isfinite(relative) and math.isfinite(std_error * std_error)):
        return None  # a control mean too close to 0 for a meaningful lift
    return relative, std_error


def compare(control: Summary, treatment: Summary, *, level: float = DEFAULT_LEVEL) -> Comparison:
    """Fixed-horizon test of treatment against control.

    Numeric metrics: Welch's t, ``se² = s_T²/n_T + s_C²/n_C``, ``t = (x̄_T − x̄_C)/se``,
    ``df = se⁴ / ((s_T²/n_T)²/(n_T − 1) + (s_C²/n_C)²/(n_C − 1))``, interval
    ``difference ± t_{df, (1+level)/2} · se``. Conversion metrics: unpooled normal
    approximation, ``se² = p_T(1 − p_T)/n_T + p_C(1 − p_C)/n_C``, interval
    ``difference ± z_{(1+level)/2} · se``. The relative interval is
    ``lift ± critical · se_rel`` with ``se_rel² = se_T²/m_C² + m_T² se_C²/m_C⁴``.
    """
    level = _check_level(level)
    arms = _arms(control, treatment)
    difference = arms.mean_treatment - arms.mean_control
    std_error = math.sqrt(arms.var_control + arms.var_treatment)
    statistic = difference / std_error
    critical = _critical(level, arms.df)
    if arms.df is None:
        p_value = min(1.0, math.erfc(abs(statistic) / math.sqrt(2.0)))
    else:
        p_value = _t_two_sided_p(statistic, arms.df)
    relative = _relative(arms)
    rel, rel_se, rel_low, rel_high = None, None, None, None
    if relative is not None:
        rel, rel_se = relative
        rel_low, rel_high = rel - critical * rel_se, rel + critical * rel_se
    return Comparison(
        method="two_proportion_z" if arms.conversion else "welch_t",
        level=level,
        mean_control=arms.mean_control,
        mean_treatment=arms.mean_treatment,
        difference=difference,
        std_error=std_error,
        ci_low=difference - critical * std_error,
        ci_high=difference + critical * std_error,
        relative_difference=rel,
        relative_std_error=rel_se,
        relative_ci_low=rel_low,
        relative_ci_high=rel_high,
        statistic=statistic,
        df=arms.df,
        p_value=p_value,
    )


# --- 3. Bayesian ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BayesianResult:
    """``chance_to_beat_control`` = P(μ_T > μ_C | data). ``expected_loss`` (the risk of
    shipping the treatment) = E[max(μ_C − μ_T, 0)], ``expected_loss_control`` (the risk of
    keeping the control) = E[max(μ_T − μ_C, 0)], in the metric's units. For metrics where
    lower is better, use 1 − chance and swap the two losses.
    ``method``: "beta_exact", "beta_normal" (conversions) or "normal" (numeric)."""

    method: Literal["beta_exact", "beta_normal", "normal"]
    chance_to_beat_control: float
    expected_loss: float
    expected_loss_control: float


def _beta_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(X_B > X_A) for X_A ~ Beta(a_a, b_a), X_B ~ Beta(a_b, b_b), whole a_b (Evan
    Miller's closed form), summed in log space::

        Σ_{i=0}^{a_b−1} B(a_a + i, b_a + b_b) / ((b_b + i) B(1 + i, b_b) B(a_a, b_a))
    """
    # log of term 0 (B(1, b_b) = 1/b_b cancels the 1/b_b), then the ratio of consecutive
    # terms: t_{i+1}/t_i = (a_a + i)(b_b + i) / ((a_a + b_a + b_b + i)(1 + i)).
    log_term = _log_beta(a_a, b_a + b_b) - _log_beta(a_a, b_a)
    logs = [log_term]
    log, s = math.log, a_a + b_a + b_b
    for i in range(a_b - 1):
        log_term += log((a_a + i) * (b_b + i) / ((s + i) * (1.0 + i)))
        logs.append(log_term)
    top = max(logs)
    total = math.fsum([math.exp(v - top) for v in logs])
    return min(1.0, max(0.0, math.exp(top + math.log(total))))


def _beta_treatment_beats_control(a_t: int, b_t: int, a_c: int, b_c: int) -> float:
    """P(X_T > X_C), summing over the smallest of the four parameters."""
    smallest = min(a_t, a_c, b_t, b_c)
    if smallest == a_t:
        return _beta_b_beats_a(a_c, b_c, a_t, b_t)
    if smallest == a_c:
        return 1.0 - _beta_b_beats_a(a_t, b_t, a_c, b_c)
    # 1 − X ~ Beta(b, a) and X_T > X_C ⇔ 1 − X_C > 1 − X_T.
    if smallest == b_c:
        return _beta_b_beats_a(b_t, a_t, b_c, a_c)
    return 1.0 - _beta_b_beats_a(b_c, a_c, b_t, a_t)


def _normal_difference(mean: float, sd: float) -> tuple[float, float, float]:
    """For D ~ N(mean, sd²): P(D > 0), E[max(−D, 0)], E[max(D, 0)]."""
    if sd <= 0.0:
        return (1.0 if mean > 0 else 0.0 if mean < 0 else 0.5), max(-mean, 0.0), max(mean, 0.0)
    z = mean / sd
    density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    chance = _normal_sf(-z)
    loss_treatment = max(0.0, sd * density - mean * _normal_sf(z))
    loss_control = max(0.0, sd * density + mean * chance)
    return chance, loss_treatment, loss_control


def bayesian(control: Summary, treatment: Summary) -> BayesianResult:
    """Chance to beat control and expected losses.

    Conversions: posteriors Beta(1 + conversions, 1 + failures) (uniform prior). While the
    smallest of the four parameters is at most ``EXACT_BETA_LIMIT``, P(X_T > X_C) is the
    exact finite sum of Evan Miller's closed form over that parameter, and the expected
    loss E[max(X_C − X_T, 0)] = m_C · P(X_C⁺ > X_T) − m_T · P(X_C > X_T⁺), where X⁺ is
    the size-biased posterior Beta(a + 1, b). Beyond the limit every posterior is normal to
    within ~0.2 % in probability and the difference X_T − X_C is taken as normal with the
    Beta means and variances.

    Numeric: flat prior, μ ~ N(x̄, s²/n) independently per arm, so
    P(μ_T > μ_C) = Φ((x̄_T − x̄_C)/√(se_T² + se_C²)) and the losses are the normal
    partial expectations.
    """
    if _pair(control, treatment):
        assert isinstance(control, ConversionSummary)
        assert isinstance(treatment, ConversionSummary)
        a_c, b_c = 1 + control.conversions, 1 + control.n - control.conversions
        a_t, b_t = 1 + treatment.conversions, 1 + treatment.n - treatment.conversions
        m_c, m_t = a_c / (a_c + b_c), a_t / (a_t + b_t)
        if min(a_t, a_c, b_t, b_c) <= EXACT_BETA_LIMIT:
            chance = _beta_treatment_beats_control(a_t, b_t, a_c, b_c)
            # E[X · 1{X_C > X_T}] = m · P(size-biased > other).
            c_plus = _beta_treatment_beats_control(a_c + 1, b_c, a_t, b_t)
            t_minus = _beta_treatment_beats_control(a_c, b_c, a_t + 1, b_t)
            loss_treatment = max(0.0, m_c * c_plus - m_t * t_minus)
            # E[max(T − C, 0)] − E[max(C − T, 0)] = m_T − m_C
            loss_control = max(0.0, loss_treatment + m_t - m_c)
            return BayesianResult("beta_exact", chance, loss_treatment, loss_control)
        var_c = a_c * b_c / ((a_c + b_c) ** 2 * (a_c + b_c + 1))
        var_t = a_t * b_t / ((a_t + b_t) ** 2 * (a_t + b_t + 1))
        chance, loss_t, loss_c = _normal_difference(m_t - m_c, math.sqrt(var_c + var_t))
        return BayesianResult("beta_normal", chance, loss_t, loss_c)
    arms = _arms(control, treatment)
    chance, loss_t, loss_c = _normal_difference(
        arms.mean_treatment - arms.mean_control, math.sqrt(arms.var_control + arms.var_treatment)
    )
    return BayesianResult("normal", chance, loss_t, loss_c)


# --- 4. sample-ratio mismatch --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleRatioResult:
    """Chi-square goodness of fit of exposures against the configured split. ``mismatch``
    is ``p_value < threshold``. A variant with weight 0 but exposures makes the statistic
    infinite and the p-value 0."""

    statistic: float
    df: int
    p_value: float
    mismatch: bool
    threshold: float
    observed: dict[str, int]
    expected: dict[str, float]


def sample_ratio_mismatch(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SampleRatioResult:
    """``statistic = Σ (O_i − E_i)² / E_i`` with ``E_i = N · w_i / Σ w``, compared with
    chi-square on (variants with positive weight − 1) degrees of freedom. Variants in
    ``weights`` missing from ``observed`` count 0 exposures; variants in ``observed``
    missing from ``weights`` are an error. Weights need not sum to 1."""
    threshold = _as_real(threshold, "threshold")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold}")
    unknown = sorted(set(observed) - set(weights))
    if unknown:
        raise ValueError(f"exposures for variants without a weight: {', '.join(unknown)}")
    clean_weights = {k: _as_real(w, f"weight of {k}") for k, w in weights.items()}
    if any(w < 0 for w in clean_weights.values()):
        raise ValueError("weights must not be negative")
    total_weight = math.fsum(clean_weights.values())
    if total_weight <= 0:
        raise ValueError("at least one weight must be positive")
    counts = {k: _as_count(observed.get(k, 0), f"exposures of {k}") for k in clean_weights}
    total = sum(counts.values())
    active = [k for k, w in clean_weights.items() if w > 0]
    if len(active) < 2:
        raise ValueError("a sample-ratio check needs at least two variants with positive weight")
    if total == 0:
        raise InsufficientData("no exposures yet")
    expected = {k: total * w / total_weight for k, w in clean_weights.items()}
    if any(counts[k] > 0 for k, w in clean_weights.items() if w == 0):
        statistic, p_value = math.inf, 0.0
    else:
        statistic = math.fsum((counts[k] - expected[k]) ** 2 / expected[k] for k in active)
        p_value = chi2_sf(statistic, len(active) - 1)
    return SampleRatioResult(
        statistic=statistic,
        df=len(active) - 1,
        p_value=p_value,
        mismatch=p_value < threshold,
        threshold=threshold,
        observed=counts,
        expected=expected,
    )


# --- 5. always-valid inference (mSPRT) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """Always-valid inference for the difference (or, with ``relative``, the lift).

    ``ci_low``/``ci_high`` is the confidence sequence at ``level``; ``p_value`` the
    always-valid p-value for H0: no difference. ``tau2`` is the mixing variance on the
    scale of ``estimate``."""

    relative: bool
    level: float
    estimate: float
    std_error: float
    tau2: float
    ci_low: float
    ci_high: float
    p_value: float


def mixing_variance(
    estimator_variance: float,
    total_n: int,
    *,
    level: float = DEFAULT_LEVEL,
    tuning_n: float = DEFAULT_TUNING_N,
) -> float:
    """The default τ²: ``V · N · ρ²`` with ``ρ² = (−2 ln α + ln(1 − 2 ln α)) / N*``, where V
    is the estimator's variance at N total units (so V·N is the variance of one unit) and N*
    is ``tuning_n``. This is the mixture for which the confidence sequence is tightest at
    N* units (Waudby-Smith et al. 2023, eq. 161; GrowthBook's tuning parameter)."""
    return estimator_variance * total_n * _rho2(level, tuning_n)


def _rho2(level: float, tuning_n: float) -> float:
    alpha = 1.0 - _check_level(level)
    tuning_n = _as_real(tuning_n, "tuning_n")
    if tuning_n <= 0:
        raise ValueError(f"tuning_n must be positive, got {tuning_n}")
    return (-2.0 * math.log(alpha) + math.log(1.0 - 2.0 * math.log(alpha))) / tuning_n


def always_valid(
    control: Summary,
    treatment: Summary,
    *,
    level: float = DEFAULT_LEVEL,
    relative: bool = False,
    tau2: float | None = None,
    tuning_n: float = DEFAULT_TUNING_N,
    previous_p_value: float | None = None,
) -> SequentialResult:
    """mSPRT with a normal mixture (Johari, Pekelis, Walsh 2017, "Always Valid Inference").

    Let θ̂ be the estimate (difference of means, or with ``relative`` the lift
    (m_T − m_C)/|m_C|), V its estimated variance (``se_T² + se_C²``, or the delta-method
    variance of the lift) and H = N(θ₀, τ²) the mixing distribution. The mixture
    likelihood ratio against θ = θ₀ is::

        Λ(θ₀) = √(V / (V + τ²)) · exp( τ² (θ̂ − θ₀)² / (2 V (V + τ²)) )

    and under θ = θ₀ it is a nonnegative martingale, so P(∃ n: Λ_n ≥ 1/α) ≤ α (Ville).
    Hence the always-valid p-value ``p = min(1, 1/Λ(0))`` and the confidence sequence
    ``{θ₀ : Λ(θ₀) < 1/α}``::

        θ̂ ± √( V (V + τ²)/τ² · (2 ln(1/α) + ln((V + τ²)/V)) )

    with α = 1 − ``level``. Both can be looked at after every batch without inflating the
    error rate (asymptotically, with the plug-in variance). ``0`` lies outside the interval
    exactly when ``p < α`` (at a single look, i.e. without ``previous_p_value``).

    ``tau2`` is on the estimator's scale (squared metric units; squared lift with
    ``relative``). By default it is ``mixing_variance(V, n_C + n_T, level, tuning_n)``, which
    makes the interval tightest around ``tuning_n`` total units; since V·N is the variance
    of one unit, V/τ² then depends only on N.

    Small-sample guard: the interval is widened to contain the fixed-horizon interval of
    ``compare`` and the p-value is at least the fixed-horizon p-value, so the sequential
    answer is never more confident than a single look (this matters only at very small n,
    where the plug-in normal approximation is worst). ``previous_p_value`` (the value
    returned at the last look, if stored) makes the p-value the running minimum of the
    paper; without it each look's value is still valid, merely not monotone.
    """
    level = _check_level(level)
    arms = _arms(control, treatment)
    fixed = compare(control, treatment, level=level)
    if relative:
        rel = _relative(arms)
        if rel is None:
            raise InsufficientData(
                "the control mean is 0 (or too close to 0), so a relative change is undefined"
            )
        estimate, std_error = rel
        fixed_low, fixed_high = fixed.relative_ci_low, fixed.relative_ci_high
        assert fixed_low is not None and fixed_high is not None
    else:
        estimate, std_error = fixed.difference, fixed.std_error
        fixed_low, fixed_high = fixed.ci_low, fixed.ci_high
    if std_error <= 0.0:
        raise InsufficientData("the estimate has zero variance")
    # Everything below depends on the data only through z = θ̂/√V and r = τ²/V; working with
    # those (rather than V and τ²) keeps extreme magnitudes from overflowing.
    if tau2 is None:
        ratio = (arms.n_control + arms.n_treatment) * _rho2(level, tuning_n)
        tau2 = std_error * std_error * ratio
        if not math.isfinite(tau2):
            raise ValueError("metric values are too large for a mixing variance")
    else:
        tau2 = _as_real(tau2, "tau2")
        if tau2 <= 0:
            raise ValueError(f"tau2 must be positive, got {tau2}")
        ratio = (math.sqrt(tau2) / std_error) ** 2
        if not 0.0 < ratio < math.inf:
            raise ValueError(f"tau2 = {tau2} is out of scale with the estimate's variance")
    alpha = 1.0 - level
    log_growth = math.log1p(ratio)  # ln((V + τ²)/V)
    z = estimate / std_error
    log_lambda = -0.5 * log_growth + 0.5 * z * z * ratio / (1.0 + ratio)
    p_value = math.exp(-log_lambda) if log_lambda > 0 else 1.0
    p_value = max(p_value, fixed.p_value)
    if previous_p_value is not None:
        previous = _as_real(previous_p_value, "previous_p_value")
        if not 0.0 <= previous <= 1.0:
            raise ValueError(f"previous_p_value must be in [0, 1], got {previous}")
        p_value = min(p_value, previous)
    # √(V (V + τ²)/τ² · …) = se · √((1 + 1/r) · …)
    half_width = std_error * math.sqrt(
        (1.0 + 1.0 / ratio) * (2.0 * math.log(1.0 / alpha) + log_growth)
    )
    return SequentialResult(
        relative=relative,
        level=level,
        estimate=estimate,
        std_error=std_error,
        tau2=tau2,
        ci_low=min(estimate - half_width, fixed_low),
        ci_high=max(estimate + half_width, fixed_high),
        p_value=min(1.0, max(0.0, p_value)),
    )


# --- 6. guardrails ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """``crossed``: with confidence ``level`` (always valid), the treatment moved the metric
    past ``bound`` in the bad direction. ``within_bound``: with the same confidence it did
    not (the whole interval is on the good side of the bound). Neither: keep watching.
    ``evidence`` is the always-valid analysis of the relative change; ``reason`` says it in
    words."""

    crossed: bool
    within_bound: bool
    direction: Direction
    bound: float
    level: float
    relative_difference: float
    ci_low: float
    ci_high: float
    evidence: SequentialResult
    reason: str


def guardrail(
    control: Summary,
    treatment: Summary,
    *,
    direction: Direction,
    bound: float,
    level: float = DEFAULT_LEVEL,
    tau2: float | None = None,
    tuning_n: float = DEFAULT_TUNING_N,
) -> GuardrailResult:
    """Did the treatment cross a relative bound in the bad direction?

    ``bound`` is a relative change ≥ 0 (0.05 = 5 %). With "increase_is_bad" the guardrail is
    crossed when the always-valid interval of the lift lies entirely above ``+bound``; with
    "decrease_is_bad" when it lies entirely below ``−bound``. Because the interval is a
    confidence sequence (``always_valid(relative=True)``), the rollout worker may check after
    every batch and the chance of ever raising a false alarm stays ≤ 1 − level. ``tau2`` is
    on the lift's scale. A zero control mean raises ``InsufficientData`` (no relative
    change exists).
    """
    if direction not in ("increase_is_bad", "decrease_is_bad"):
        raise ValueError(
            f"direction must be 'increase_is_bad' or 'decrease_is_bad', got {direction!r}"
        )
    bound = _as_real(bound, "bound")
    if bound < 0:
        raise ValueError(f"bound is a relative change and must not be negative, got {bound}")
    evidence = always_valid(
        control, treatment, level=level, relative=True, tau2=tau2, tuning_n=tuning_n
    )
    low, high = evidence.ci_low, evidence.ci_high
    if direction == "increase_is_bad":
        crossed, within = low > bound, high < bound
        limit = f"+{bound:.2%}"
    else:
        crossed, within = high < -bound, low > -bound
        limit = f"-{bound:.2%}"
    interval = f"[{low:+.2%}, {high:+.2%}] at {evidence.level:.0%} (always valid)"
    if crossed:
        reason = f"relative change {evidence.estimate:+.2%}, interval {interval} is past {limit}"
    elif within:
        reason = f"relative change {evidence.estimate:+.2%}, interval {interval} is within {limit}"
    else:
        reason = f"relative change {evidence.estimate:+.2%}, interval {interval} includes {limit}"
    return GuardrailResult(
        crossed=crossed,
        within_bound=within,
        direction=direction,
        bound=bound,
        level=evidence.level,
        relative_difference=evidence.estimate,
        ci_low=low,
        ci_high=high,
        evidence=evidence,
        reason=reason,
    )


# --- everything at once ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreatmentResult:
    """One treatment against the control. When its data do not support the statistics yet,
    the three results are ``None`` and ``not_enough_data`` says why."""

    variant: str
    comparison: Comparison | None
    bayesian: BayesianResult | None
    sequential: SequentialResult | None
    not_enough_data: str | None


@dataclass(frozen=True, slots=True)
class ExperimentAnalysis:
    """One metric of one experiment: every variant's statistics (control included) and every
    treatment against the control, in input order."""

    control: str
    level: float
    variants: dict[str, VariantStats]
    treatments: dict[str, TreatmentResult]


def analyze(
    variants: Mapping[str, Summary],
    control: str,
    *,
    level: float = DEFAULT_LEVEL,
    tau2: float | None = None,
    tuning_n: float = DEFAULT_TUNING_N,
) -> ExperimentAnalysis:
    """``describe`` every variant and, for each treatment, ``compare``, ``bayesian`` and
    ``always_valid`` (absolute difference) against ``control``."""
    level = _check_level(level)
    if control not in variants:
        raise ValueError(f"unknown control variant {control!r}")
    if len(variants) < 2:
        raise ValueError("an experiment needs a control and at least one treatment")
    kinds = {type(s) for s in variants.values()}
    if len(kinds) != 1 or not kinds <= {ConversionSummary, NumericSummary}:
        raise ValueError("all variants must be summaries of the same metric kind")
    stats = {name: describe(name, summary) for name, summary in variants.items()}
    base = variants[control]
    treatments: dict[str, TreatmentResult] = {}
    for name, summary in variants.items():
        if name == control:
            continue
        try:
            result = TreatmentResult(
                variant=name,
                comparison=compare(base, summary, level=level),
                bayesian=bayesian(base, summary),
                sequential=always_valid(base, summary, level=level, tau2=tau2, tuning_n=tuning_n),
                not_enough_data=None,
            )
        except InsufficientData as exc:
            result = TreatmentResult(name, None, None, None, str(exc))
        treatments[name] = result
    return ExperimentAnalysis(control=control, level=level, variants=stats, treatments=treatments)
