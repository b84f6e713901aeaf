"""The store's percentile search gives exactly what ddsketch's own gives, for any sketch:
single or merged, negative values, zeros, every quantile."""

from __future__ import annotations

from ddsketch import DDSketch
from hypothesis import given, settings
from hypothesis import strategies as st

from mechanisms.ops import metrics

values = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.just(0.0),
    ),
    min_size=1,
    max_size=200,
)
quantiles = st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=10)


def stored(samples: list[float]) -> metrics.SketchBins:
    sketch = DDSketch(relative_accuracy=metrics.RELATIVE_ACCURACY)
    for value in samples:
        sketch.add(value)
    return metrics.SketchBins.of(metrics._sketch_bytes(sketch))


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=6), quantiles)
def test_quantiles_match_the_librarys(groups: list[list[float]], qs: list[float]) -> None:
    sketch = metrics.merged([stored(g) for g in groups])
    bins = [stored(g) for g in groups]
    for q in [*qs, 0.0, 0.5, 0.99, 1.0]:
        expected = sketch.get_quantile_value(q)
        assert metrics.quantile(sketch, q) == expected
        assert metrics.merged_quantile(bins, q) == expected


def test_an_empty_sketch_and_quantiles_out_of_range_have_no_value() -> None:
    sketch = DDSketch(relative_accuracy=metrics.RELATIVE_ACCURACY)
    assert metrics.quantile(sketch, 0.5) is None
    sketch.add(3.0)
    assert metrics.quantile(sketch, 1.5) is None and metrics.quantile(sketch, -0.1) is None
    assert metrics.quantile(sketch, 0.5) == sketch.get_quantile_value(0.5)
