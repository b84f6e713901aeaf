"""Experiment statistics checked against SciPy (1e-6 relative; Monte-Carlo estimates to
0.01), properties under Hypothesis, and the peeking guarantee of the mSPRT by simulation.

SciPy and NumPy are test-only dependencies: the module itself uses ``math`` alone.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from mechanisms.flags import stats
from mechanisms.flags.stats import (
    ConversionSummary,
    InsufficientData,
    NumericSummary,
    always_valid,
    analyze,
    bayesian,
    compare,
    describe,
    guardrail,
    sample_ratio_mismatch,
)

REL = 1e-6


def numeric(values) -> NumericSummary:
    values = [float(v) for v in values]
    return NumericSummary(len(values), math.fsum(values), math.fsum(v * v for v in values))


def close(actual: float, expected: float, rel: float = REL) -> bool:
    return math.isclose(actual, float(expected), rel_tol=rel, abs_tol=1e-300)


def data(seed: int, n: int, mean: float, sd: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


# Known data: (control, treatment) samples of different sizes and spreads.
DATASETS = [
    (data(1, 40, 10.0, 2.0), data(2, 55, 10.8, 3.5)),
    (data(3, 5, 3.0, 1.0), data(4, 3, 4.0, 0.2)),
    (data(5, 2000, 250.0, 80.0), data(6, 1800, 245.0, 60.0)),
    (data(7, 2, 1.0, 1.0), data(8, 2, 1.5, 1.0)),
    (np.array([1, 2, 3, 4, 5, 4, 5, 5, 3, 4]), np.array([5, 5, 4, 5, 3, 5, 4, 5, 5, 5])),
]


# --- special functions against SciPy --------------------------------------------------------


@pytest.mark.parametrize("df", [0.5, 1, 1.7, 2, 3, 7.5, 30, 123.4, 1e3, 1e5, 1e7])
def test_t_sf_and_isf_match_scipy(df):
    for t in [0.0, 1e-6, 0.3, 1.0, 1.96, 2.5, 4.0, 8.0, 25.0]:
        for sign in (1, -1):
            assert close(stats.t_sf(sign * t, df), sps.t.sf(sign * t, df))
    for q in [0.45, 0.2, 0.05, 0.025, 0.005, 1e-4, 1e-8, 1e-12, 0.9, 0.995]:
        assert close(stats.t_isf(q, df), sps.t.isf(q, df))
        if q >= 1e-4:  # 1 − q is exact enough for ppf
            assert close(stats.t_isf(q, df), sps.t.ppf(1 - q, df))


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 31, 100, 999])
def test_chi2_sf_matches_scipy(df):
    for x in [1e-6, 0.1, 1.0, 3.84, df - 0.5, df + 2.0, 2.0 * df, 50.0, 200.0, 1500.0]:
        if x <= 0:
            continue
        assert close(stats.chi2_sf(x, df), sps.chi2.sf(x, df))
    assert stats.chi2_sf(0.0, df) == 1.0
    assert stats.chi2_sf(math.inf, df) == 0.0


# --- 1. per variant ----------------------------------------------------------------------------


def test_describe_numeric_and_conversions():
    values = DATASETS[0][0]
    result = describe("control", numeric(values))
    assert result.variant == "control" and result.n == len(values)
    assert close(result.mean, np.mean(values))
    assert close(result.variance, np.var(values, ddof=1))
    assert close(result.std_error, sps.sem(values))

    rate = describe("b", ConversionSummary(n=200, conversions=30))
    assert rate.mean == 0.15
    assert close(rate.std_error, math.sqrt(0.15 * 0.85 / 200))


def test_describe_reports_what_is_not_defined_yet():
    assert describe("a", ConversionSummary(0, 0)) == stats.VariantStats("a", 0, None, None, None)
    assert describe("a", NumericSummary(0, 0, 0)) == stats.VariantStats("a", 0, None, None, None)
    single = describe("a", NumericSummary(1, 4.0, 16.0))
    assert single.mean == 4.0 and single.variance is None and single.std_error is None


# --- 2. fixed horizon --------------------------------------------------------------------------


@pytest.mark.parametrize("control, treatment", DATASETS)
@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_welch_matches_scipy(control, treatment, level):
    result = compare(numeric(control), numeric(treatment), level=level)
    expected = sps.ttest_ind(treatment, control, equal_var=False)
    assert result.method == "welch_t"
    assert close(result.difference, np.mean(treatment) - np.mean(control))
    assert close(result.statistic, expected.statistic)
    assert close(result.p_value, expected.pvalue)
    assert close(result.df, expected.df)
    low, high = expected.confidence_interval(confidence_level=level)
    assert close(result.ci_low, low) and close(result.ci_high, high)
    half = sps.t.ppf((1 + level) / 2, expected.df) * result.std_error
    assert close(result.ci_high - result.difference, half)
    # The lift and its delta-method interval.
    mc, mt = np.mean(control), np.mean(treatment)
    assert close(result.relative_difference, (mt - mc) / abs(mc))
    var_c = np.var(control, ddof=1) / len(control)
    var_t = np.var(treatment, ddof=1) / len(treatment)
    rel_se = math.sqrt(var_t / mc**2 + mt**2 * var_c / mc**4)
    assert close(result.relative_std_error, rel_se)
    assert close(
        result.relative_ci_high - result.relative_difference, rel_se * half / result.std_error
    )


def test_welch_from_stats_matches_scipy():
    control, treatment = NumericSummary(400, 1600.0, 7200.0), NumericSummary(350, 1505.0, 7000.0)
    result = compare(control, treatment)
    sd_c = math.sqrt((7200 - 1600**2 / 400) / 399)
    sd_t = math.sqrt((7000 - 1505**2 / 350) / 349)
    expected = sps.ttest_ind_from_stats(1505 / 350, sd_t, 350, 4.0, sd_c, 400, equal_var=False)
    assert close(result.statistic, expected.statistic)
    assert close(result.p_value, expected.pvalue)


@pytest.mark.parametrize(
    "control, treatment",
    [((1000, 100), (1000, 130)), ((50, 0), (60, 6)), ((10**6, 20_000), (10**6, 20_400))],
)
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_two_proportion_z_matches_scipy(control, treatment, level):
    (nc, xc), (nt, xt) = control, treatment
    result = compare(ConversionSummary(nc, xc), ConversionSummary(nt, xt), level=level)
    pc, pt = xc / nc, xt / nt
    se = math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    z = (pt - pc) / se
    assert result.method == "two_proportion_z" and result.df is None
    assert close(result.statistic, z)
    assert close(result.p_value, 2 * sps.norm.sf(abs(z)))
    crit = sps.norm.ppf((1 + level) / 2)
    assert close(result.ci_low, pt - pc - crit * se) and close(result.ci_high, pt - pc + crit * se)
    if pc == 0:
        assert result.relative_difference is None and result.relative_ci_low is None
    else:
        assert close(result.relative_difference, (pt - pc) / pc)


# --- 3. Bayesian -------------------------------------------------------------------------------


def _mc_check(result, control_draws, treatment_draws):
    n = len(control_draws)
    assert abs(result.chance_to_beat_control - np.mean(treatment_draws > control_draws)) < 0.01
    for loss, draws in (
        (result.expected_loss, np.maximum(control_draws - treatment_draws, 0)),
        (result.expected_loss_control, np.maximum(treatment_draws - control_draws, 0)),
    ):
        # Within 2 % or four Monte-Carlo standard errors.
        assert abs(loss - draws.mean()) <= 0.02 * draws.mean() + 4 * draws.std() / math.sqrt(n)


@pytest.mark.parametrize(
    "control, treatment, method",
    [
        ((0, 0), (0, 0), "beta_exact"),
        ((50, 3), (50, 7), "beta_exact"),
        ((100, 40), (100, 60), "beta_exact"),
        ((1000, 200), (1000, 260), "beta_exact"),
        ((1000, 990), (1000, 995), "beta_exact"),
        ((10_000, 5000), (10_000, 5100), "beta_exact"),
        ((10**6, 20_000), (10**6, 20_150), "beta_normal"),
        ((40_000, 20_000), (40_000, 20_050), "beta_normal"),
    ],
)
def test_beta_chance_to_beat_matches_monte_carlo(control, treatment, method):
    (nc, xc), (nt, xt) = control, treatment
    result = bayesian(ConversionSummary(nc, xc), ConversionSummary(nt, xt))
    assert result.method == method
    rng = np.random.default_rng(7)
    draws = 1_000_000
    _mc_check(
        result,
        rng.beta(1 + xc, 1 + nc - xc, draws),
        rng.beta(1 + xt, 1 + nt - xt, draws),
    )


def test_exact_and_normal_beta_agree_where_they_meet(monkeypatch):
    control, treatment = ConversionSummary(25_000, 12_000), ConversionSummary(25_000, 12_080)
    normal = bayesian(control, treatment)
    monkeypatch.setattr(stats, "EXACT_BETA_LIMIT", 10**9)
    exact = bayesian(control, treatment)
    assert (normal.method, exact.method) == ("beta_normal", "beta_exact")
    assert abs(normal.chance_to_beat_control - exact.chance_to_beat_control) < 0.002


def test_beta_exact_small_cases():
    # Beta(1, 1) against Beta(1, 1): one half; Beta(2, 1) (one success) against Beta(1, 2): 5/6.
    same = bayesian(ConversionSummary(0, 0), ConversionSummary(0, 0))
    assert math.isclose(same.chance_to_beat_control, 0.5)
    assert math.isclose(same.expected_loss, 1 / 6)
    better = bayesian(ConversionSummary(1, 0), ConversionSummary(1, 1))
    assert math.isclose(better.chance_to_beat_control, 5 / 6)


@pytest.mark.parametrize("control, treatment", DATASETS[:3])
def test_numeric_bayesian_matches_normal_and_monte_carlo(control, treatment):
    result = bayesian(numeric(control), numeric(treatment))
    assert result.method == "normal"
    se_c, se_t = sps.sem(control), sps.sem(treatment)
    diff = np.mean(treatment) - np.mean(control)
    assert close(result.chance_to_beat_control, sps.norm.cdf(diff / math.hypot(se_c, se_t)))
    rng = np.random.default_rng(11)
    draws = 1_000_000
    _mc_check(
        result,
        rng.normal(np.mean(control), se_c, draws),
        rng.normal(np.mean(treatment), se_t, draws),
    )


# --- 4. sample-ratio mismatch ---------------------------------------------------------------


@pytest.mark.parametrize(
    "observed, weights",
    [
        ({"a": 5050, "b": 4950}, {"a": 1, "b": 1}),
        ({"a": 5300, "b": 4700}, {"a": 0.5, "b": 0.5}),
        ({"a": 2000, "b": 1030, "c": 980}, {"a": 50, "b": 25, "c": 25}),
        ({"a": 10, "b": 3, "c": 7, "d": 12}, {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}),
    ],
)
def test_srm_matches_scipy_chisquare(observed, weights):
    result = sample_ratio_mismatch(observed, weights)
    total, wsum = sum(observed.values()), sum(weights.values())
    f_exp = [total * weights[k] / wsum for k in weights]
    expected = sps.chisquare([observed[k] for k in weights], f_exp)
    assert close(result.statistic, expected.statistic)
    assert close(result.p_value, expected.pvalue)
    assert result.df == len(weights) - 1
    assert result.mismatch == bool(expected.pvalue < 0.001)


def test_srm_flags_and_thresholds():
    assert sample_ratio_mismatch({"a": 5300, "b": 4700}, {"a": 1, "b": 1}).mismatch
    balanced = sample_ratio_mismatch({"a": 5000, "b": 5000}, {"a": 1, "b": 1})
    assert balanced.statistic == 0 and balanced.p_value == 1.0 and not balanced.mismatch
    mild = {"a": 5120, "b": 4880}  # p ≈ 0.016
    assert not sample_ratio_mismatch(mild, {"a": 1, "b": 1}).mismatch
    assert sample_ratio_mismatch(mild, {"a": 1, "b": 1}, threshold=0.05).mismatch
    # A variant missing from the exposures counts zero; a zero-weight variant with exposures
    # is a certain mismatch.
    missing = sample_ratio_mismatch({"a": 100}, {"a": 1, "b": 1})
    assert missing.observed == {"a": 100, "b": 0} and missing.mismatch
    leak = sample_ratio_mismatch({"a": 100, "b": 100, "off": 1}, {"a": 1, "b": 1, "off": 0})
    assert leak.mismatch and leak.p_value == 0.0 and leak.df == 1
    with pytest.raises(ValueError, match="without a weight"):
        sample_ratio_mismatch({"a": 1, "x": 2}, {"a": 1, "b": 1})
    with pytest.raises(InsufficientData):
        sample_ratio_mismatch({}, {"a": 1, "b": 1})
    with pytest.raises(ValueError):
        sample_ratio_mismatch({"a": 1}, {"a": 1})
    with pytest.raises(ValueError):
        sample_ratio_mismatch({"a": -1, "b": 2}, {"a": 1, "b": 1})
    with pytest.raises(ValueError):
        sample_ratio_mismatch({"a": 1, "b": 2}, {"a": -1, "b": 1})
    with pytest.raises(ValueError):
        sample_ratio_mismatch({"a": 1, "b": 2}, {"a": 1, "b": 1}, threshold=0)


# --- 5. always-valid inference -----------------------------------------------------------------


def _mixture_lr(estimate: float, variance: float, tau2: float, theta0: float) -> float:
    """Λ(θ₀) by numerical integration of the likelihood ratio over N(θ₀, τ²)."""
    sd, tau = math.sqrt(variance), math.sqrt(tau2)

    def integrand(theta):
        log_ratio = (-((estimate - theta) ** 2) + (estimate - theta0) ** 2) / (2 * variance)
        return math.exp(log_ratio) * sps.norm.pdf(theta, theta0, tau)

    points = sorted({theta0, estimate})
    lo = min(points) - 12 * (tau + sd)
    hi = max(points) + 12 * (tau + sd)
    value, _ = integrate.quad(integrand, lo, hi, points=points, epsabs=0, epsrel=1e-11, limit=500)
    return value


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize(
    "control, treatment",
    [
        (numeric(data(21, 3000, 10.0, 4.0)), numeric(data(22, 3100, 10.3, 4.0))),
        (ConversionSummary(20_000, 2000), ConversionSummary(20_000, 2150)),
    ],
)
def test_msprt_matches_the_mixture_likelihood_ratio(control, treatment, relative):
    level = 0.95
    result = always_valid(control, treatment, level=level, relative=relative)
    fixed = compare(control, treatment, level=level)
    variance = result.std_error**2
    # Default mixing variance: V·N·ρ² with ρ² from the tuning parameter.
    alpha = 1 - level
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / stats.DEFAULT_TUNING_N
    assert close(result.tau2, variance * (control.n + treatment.n) * rho2)
    # The interval's ends are where the mixture likelihood ratio reaches 1/α.
    for end in (result.ci_low, result.ci_high):
        assert close(_mixture_lr(result.estimate, variance, result.tau2, end), 1 / alpha)
    # The p-value is 1/Λ(0) (here larger than the fixed-horizon one).
    assert result.p_value > fixed.p_value
    assert close(
        result.p_value, min(1.0, 1 / _mixture_lr(result.estimate, variance, result.tau2, 0.0))
    )
    # Closed form of the docstring.
    half = math.sqrt(
        variance
        * (variance + result.tau2)
        / result.tau2
        * (2 * math.log(1 / alpha) + math.log((variance + result.tau2) / variance))
    )
    assert close(result.ci_high - result.estimate, half)


def test_msprt_explicit_tau_and_running_minimum():
    control, treatment = ConversionSummary(5000, 500), ConversionSummary(5000, 560)
    result = always_valid(control, treatment, tau2=1e-4)
    assert result.tau2 == 1e-4
    variance = result.std_error**2
    assert close(result.p_value, 1 / _mixture_lr(result.estimate, variance, 1e-4, 0.0))
    assert always_valid(control, treatment, tau2=1e-4, previous_p_value=0.01).p_value == 0.01
    assert (
        always_valid(control, treatment, tau2=1e-4, previous_p_value=0.99).p_value == result.p_value
    )
    with pytest.raises(ValueError):
        always_valid(control, treatment, tau2=0)
    with pytest.raises(ValueError):
        always_valid(control, treatment, previous_p_value=1.5)
    with pytest.raises(ValueError):
        always_valid(control, treatment, tuning_n=0)


def test_msprt_small_samples_are_no_more_confident_than_one_look():
    control, treatment = numeric([1.0, 2.0, 3.0]), numeric([2.5, 2.6])
    result = always_valid(control, treatment)
    fixed = compare(control, treatment)
    assert result.ci_low <= fixed.ci_low and result.ci_high >= fixed.ci_high
    assert result.p_value >= fixed.p_value


def _aa_peeking(rng, runs, peeks, step, draw):
    """Fraction of A/A runs whose always-valid and naive p-values ever fall below 0.05."""
    av_hits = naive_hits = 0
    for _ in range(runs):
        a, b = draw(rng, step * peeks), draw(rng, step * peeks)
        sa, sb = np.cumsum(a), np.cumsum(b)
        qa, qb = np.cumsum(a * a), np.cumsum(b * b)
        av = naive = False
        previous = None
        for k in range(step, step * peeks + 1, step):
            if draw is _bernoulli:
                control = ConversionSummary(k, int(sa[k - 1]))
                treatment = ConversionSummary(k, int(sb[k - 1]))
            else:
                control = NumericSummary(k, float(sa[k - 1]), float(qa[k - 1]))
                treatment = NumericSummary(k, float(sb[k - 1]), float(qb[k - 1]))
            sequential = always_valid(control, treatment, previous_p_value=previous)
            previous = sequential.p_value
            av |= sequential.p_value < 0.05
            naive |= compare(control, treatment).p_value < 0.05
        av_hits += av
        naive_hits += naive
    return av_hits / runs, naive_hits / runs


def _normal(rng, n):
    return rng.normal(5.0, 2.0, n)


def _bernoulli(rng, n):
    return (rng.random(n) < 0.1).astype(float)


@pytest.mark.parametrize("draw", [_normal, _bernoulli])
def test_msprt_controls_false_positives_under_peeking(draw):
    # 300 A/A tests, a look every 100 units per arm up to 3000.
    av_rate, naive_rate = _aa_peeking(np.random.default_rng(20240601), 300, 30, 100, draw)
    assert av_rate <= 0.05 + 0.025
    assert naive_rate >= 0.15  # about 0.25–0.3 with 30 looks
    assert naive_rate > 3 * av_rate


# --- 6. guardrails -------------------------------------------------------------------------------


def test_guardrail_crosses_on_a_clear_regression():
    # Latency up 12 % with plenty of data: crossed a +5 % bound.
    control = numeric(data(31, 4000, 200.0, 40.0))
    treatment = numeric(data(32, 4000, 224.0, 40.0))
    result = guardrail(control, treatment, direction="increase_is_bad", bound=0.05)
    assert result.crossed and not result.within_bound
    assert result.ci_low > 0.05 and math.isclose(
        result.relative_difference, result.evidence.estimate
    )
    assert "past +5.00%" in result.reason
    # The same data cannot cross a decrease-is-bad guardrail, and is clear of one.
    other = guardrail(control, treatment, direction="decrease_is_bad", bound=0.05)
    assert not other.crossed and other.within_bound


def test_guardrail_conversions_decrease_and_inconclusive():
    control = ConversionSummary(50_000, 5000)
    worse = ConversionSummary(50_000, 4300)  # −14 %
    assert guardrail(control, worse, direction="decrease_is_bad", bound=0.05).crossed
    small = guardrail(
        ConversionSummary(500, 50),
        ConversionSummary(500, 46),
        direction="decrease_is_bad",
        bound=0.05,
    )
    assert not small.crossed and not small.within_bound and "includes -5.00%" in small.reason
    flat = guardrail(
        control, ConversionSummary(50_000, 5010), direction="decrease_is_bad", bound=0.1
    )
    assert flat.within_bound and not flat.crossed


def test_guardrail_is_always_valid_under_repeated_checks():
    rng = np.random.default_rng(99)
    alarms = 0
    for _ in range(200):
        a, b = rng.normal(100, 30, 3000), rng.normal(100, 30, 3000)
        sa, sb, qa, qb = np.cumsum(a), np.cumsum(b), np.cumsum(a * a), np.cumsum(b * b)
        for k in range(100, 3001, 100):
            check = guardrail(
                NumericSummary(k, sa[k - 1], qa[k - 1]),
                NumericSummary(k, sb[k - 1], qb[k - 1]),
                direction="increase_is_bad",
                bound=0.0,
            )
            if check.crossed:
                alarms += 1
                break
    assert alarms / 200 <= 0.05


def test_guardrail_bad_input():
    control, treatment = ConversionSummary(100, 0), ConversionSummary(100, 5)
    with pytest.raises(InsufficientData, match="control mean is 0"):
        guardrail(control, treatment, direction="increase_is_bad", bound=0.05)
    with pytest.raises(ValueError, match="direction"):
        guardrail(control, ConversionSummary(100, 5), direction="up", bound=0.05)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bound"):
        guardrail(ConversionSummary(100, 4), treatment, direction="increase_is_bad", bound=-0.1)


# --- everything at once -----------------------------------------------------------------------


def test_analyze_experiment():
    variants = {
        "control": ConversionSummary(10_000, 1000),
        "blue": ConversionSummary(10_000, 1100),
        "green": ConversionSummary(0, 0),
    }
    result = analyze(variants, "control")
    assert list(result.variants) == ["control", "blue", "green"]
    assert list(result.treatments) == ["blue", "green"]
    blue = result.treatments["blue"]
    assert blue.comparison == compare(variants["control"], variants["blue"])
    assert blue.bayesian == bayesian(variants["control"], variants["blue"])
    assert blue.sequential == always_valid(variants["control"], variants["blue"])
    assert blue.not_enough_data is None
    green = result.treatments["green"]
    assert green.comparison is None and "no exposed units" in green.not_enough_data
    with pytest.raises(ValueError, match="unknown control"):
        analyze(variants, "red")
    with pytest.raises(ValueError, match="same metric kind"):
        analyze({"control": ConversionSummary(1, 1), "x": NumericSummary(2, 1, 1)}, "control")
    with pytest.raises(ValueError):
        analyze({"control": ConversionSummary(1, 1)}, "control")


# --- 7. bad input -----------------------------------------------------------------------------


def test_bad_summaries_raise_value_error():
    with pytest.raises(ValueError, match="negative"):
        ConversionSummary(-1, 0)
    with pytest.raises(ValueError, match="exceed"):
        ConversionSummary(10, 11)
    with pytest.raises(ValueError):
        ConversionSummary(10.5, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ConversionSummary(True, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        NumericSummary(3, math.nan, 1.0)
    with pytest.raises(ValueError):
        NumericSummary(3, 1.0, -1.0)
    with pytest.raises(ValueError, match="inconsistent"):
        NumericSummary(2, 10.0, 1.0)
    with pytest.raises(ValueError):
        NumericSummary(0, 1.0, 1.0)
    # SQL aggregates arrive as Decimal or NumPy numbers: accepted.
    summary = NumericSummary(Decimal(3), Decimal("6.5"), Decimal("15.25"))
    assert summary == NumericSummary(3, 6.5, 15.25) and isinstance(summary.n, int)
    assert ConversionSummary(np.int64(5), np.int64(2)).n == 5


def test_not_enough_data():
    one = NumericSummary(1, 3.0, 9.0)
    two = NumericSummary(2, 6.0, 20.0)
    with pytest.raises(InsufficientData, match="at least 2"):
        compare(one, two)
    with pytest.raises(InsufficientData, match="no exposed units"):
        compare(ConversionSummary(0, 0), ConversionSummary(10, 1))
    flat = NumericSummary(5, 10.0, 20.0)  # all values 2
    with pytest.raises(InsufficientData, match="zero variance"):
        compare(flat, NumericSummary(4, 8.0, 16.0))
    with pytest.raises(InsufficientData, match="zero variance"):
        bayesian(flat, NumericSummary(4, 8.0, 16.0))
    with pytest.raises(InsufficientData):
        always_valid(ConversionSummary(100, 0), ConversionSummary(100, 0))
    # One arm with zero variance is fine.
    assert compare(flat, two).df == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same metric kind"):
        compare(ConversionSummary(10, 1), two)
    with pytest.raises(ValueError, match="level"):
        compare(two, two, level=1.0)
    assert issubclass(InsufficientData, ValueError)


# --- properties -------------------------------------------------------------------------------


@st.composite
def numeric_summaries(draw):
    n = draw(st.integers(2, 1_000_000))
    mean = draw(st.floats(-1000, 1000))
    sd = draw(st.floats(0, 1000))
    return NumericSummary(n, n * mean, (n - 1) * sd * sd + n * mean * mean)


@st.composite
def conversion_summaries(draw, max_n=1_000_000):
    n = draw(st.integers(1, max_n))
    return ConversionSummary(n, draw(st.integers(0, n)))


def pairs(max_n=1_000_000):
    return st.one_of(
        st.tuples(numeric_summaries(), numeric_summaries()),
        st.tuples(conversion_summaries(max_n), conversion_summaries(max_n)),
    )


levels = st.floats(0.5, 0.999)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _finite(obj) -> bool:
    return all(
        math.isfinite(v) for v in (getattr(obj, f) for f in obj.__slots__) if isinstance(v, float)
    )


@PROPERTY
@given(pairs(), levels)
def test_property_intervals_contain_estimates(pair, level):
    control, treatment = pair
    try:
        result = compare(control, treatment, level=level)
    except InsufficientData:
        assume(False)
    assert _finite(result)
    assert result.ci_low <= result.difference <= result.ci_high
    assert 0.0 <= result.p_value <= 1.0
    if result.relative_difference is not None:
        assert result.relative_ci_low <= result.relative_difference <= result.relative_ci_high
    # p < α exactly when 0 is outside the interval (up to rounding at the boundary).
    alpha = 1 - level
    if abs(result.p_value - alpha) > 1e-9:
        assert (result.p_value < alpha) == (not result.ci_low <= 0 <= result.ci_high)


@PROPERTY
@given(pairs(), levels, st.booleans())
def test_property_always_valid_is_wider_and_consistent(pair, level, relative):
    control, treatment = pair
    try:
        fixed = compare(control, treatment, level=level)
        sequential = always_valid(control, treatment, level=level, relative=relative)
    except InsufficientData:
        assume(False)
    except ValueError as exc:
        # Sums so large that τ² overflows a float are refused as bad input, by design.
        assert "too large" in str(exc)
        assume(False)
    assert _finite(sequential)
    assert 0.0 <= sequential.p_value <= 1.0
    assert sequential.ci_low <= sequential.estimate <= sequential.ci_high
    if relative:
        assert sequential.ci_low <= fixed.relative_ci_low
        assert sequential.ci_high >= fixed.relative_ci_high
    else:
        assert sequential.ci_low <= fixed.ci_low and sequential.ci_high >= fixed.ci_high
        assert sequential.p_value >= fixed.p_value
    alpha = 1 - level
    if abs(sequential.p_value - alpha) > 1e-9 and not relative:
        assert (sequential.p_value < alpha) == (not sequential.ci_low <= 0 <= sequential.ci_high)


@PROPERTY
@given(pairs(), levels)
def test_property_swapping_flips_the_sign(pair, level):
    control, treatment = pair
    try:
        forward = compare(control, treatment, level=level)
        backward = compare(treatment, control, level=level)
        seq_forward = always_valid(control, treatment, level=level)
        seq_backward = always_valid(treatment, control, level=level)
    except InsufficientData:
        assume(False)
    except ValueError as exc:
        assert "too large" in str(exc)
        assume(False)
    assert backward.difference == -forward.difference
    assert math.isclose(backward.ci_low, -forward.ci_high, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(backward.ci_high, -forward.ci_low, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(backward.p_value, forward.p_value, rel_tol=1e-9, abs_tol=1e-300)
    assert math.isclose(seq_backward.ci_low, -seq_forward.ci_high, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(seq_backward.p_value, seq_forward.p_value, rel_tol=1e-9, abs_tol=1e-300)


@settings(max_examples=80, deadline=None)
@given(pairs(max_n=5000))
def test_property_bayesian_is_a_probability(pair):
    control, treatment = pair
    try:
        forward = bayesian(control, treatment)
        backward = bayesian(treatment, control)
    except InsufficientData:
        assume(False)
    assert _finite(forward)
    assert 0.0 <= forward.chance_to_beat_control <= 1.0
    assert forward.expected_loss >= 0 and forward.expected_loss_control >= 0
    assert math.isclose(
        forward.chance_to_beat_control + backward.chance_to_beat_control, 1.0, abs_tol=1e-9
    )
    assert math.isclose(forward.expected_loss, backward.expected_loss_control, abs_tol=1e-9)


@PROPERTY
@given(st.lists(st.integers(0, 10**7), min_size=2, max_size=6), st.data())
def test_property_srm_p_value_in_range(counts, data_):
    weights = data_.draw(st.lists(st.floats(0.01, 100), min_size=len(counts), max_size=len(counts)))
    assume(sum(counts) > 0)
    names = [f"v{i}" for i in range(len(counts))]
    result = sample_ratio_mismatch(
        dict(zip(names, counts, strict=True)), dict(zip(names, weights, strict=True))
    )
    assert 0.0 <= result.p_value <= 1.0 and result.statistic >= 0 and _finite(result)
    assert result.mismatch is (result.p_value < 0.001)
