"""Demand per stage and period from a sales history: mean, standard deviation, class, distribution.

Periods and windows
-------------------
Records are summed per stage and period (``day``, or ``week``: Monday to Sunday). A stage's
window runs from its first to its last record (or over ``start``..``end`` for every stage when
the caller fixes it); with weeks, only whole weeks inside the window count, so a history that
starts on a Wednesday does not open with a short week. Periods of the window without a record
are zero demand ("zero-filled"; nothing is materialised: a missing period adds to the count of
periods and nothing to the sums). A period with any record flagged out of stock is left out —
neither zero nor the recorded sales, since sales then show what was on the shelf, not demand.

Estimates
---------
With ``n`` periods used (window periods minus out-of-stock ones) and ``x_t`` their demand:
``demand_mean = Σx/n`` and ``demand_sd`` the sample standard deviation (divisor ``n − 1``).
Where the records carry a ``forecast``, ``demand_sd`` is the root mean square forecast error
``sqrt(Σ(x_t − f_t)²/m)`` over the ``m`` in-stock periods with a forecast (at least
:data:`MIN_PERIODS`; the bias stays in, since a biased forecast needs that protection too, and is
reported as ``forecast_bias``); a week's forecast is the sum of its records' forecasts and counts
when none of them lacks one. A stage is ``estimated`` with at least :data:`MIN_PERIODS` periods.

Syntetos–Boylan class (Syntetos, Boylan & Croston 2005): ``adi = n / k`` with ``k`` periods of
positive demand, and ``cv2`` the squared coefficient of variation of those ``k`` positive demands
(sample variance; reported null, and taken as 0, below two). ``adi < 1.32`` and ``cv2 < 0.49``:
smooth; ``adi < 1.32``, ``cv2 ≥ 0.49``: erratic; ``adi ≥ 1.32``, ``cv2 < 0.49``: intermittent;
both at or above: lumpy. A stage without positive demand has no class.

Distribution (the first rule that applies):

1. no demand, or no variability (``demand_sd = 0``): ``normal`` (nothing to buffer, or a
   constant);
2. smooth with ``demand_mean ≥ 3·demand_sd``: ``normal`` (it puts < 0.14 % of its mass below 0);
3. count data (every in-stock record a whole number): ``poisson`` unless Fisher's index of
   dispersion test rejects it at the 1 % level — ``sd²/mean > χ²₀.₉₉(ν)/ν`` with ``ν`` one less
   than the periods behind ``demand_sd`` — then ``negative_binomial`` (overdispersed counts;
   underdispersed counts keep Poisson, which errs on the safe side);
4. otherwise (continuous quantities, skewed or intermittent): ``gamma``.

Passes and exactness: one streaming pass gives every stage's window, sums and row-rule counts;
a stage whose records form one run in strictly increasing date order has its days as records, so
with daily periods its statistics come from that pass. Other stages, and all with weekly periods,
take a second pass per bucket of at most :data:`MAX_PERIOD_GROUPS` stage-periods. Quantities are
summed as integers of 10⁻⁶ units (Int128), so the estimates are the same bit for bit whatever
the thread count or record order.

References
----------
Syntetos, A. A., Boylan, J. E., & Croston, J. D. (2005). On the categorization of demand
patterns. *Journal of the Operational Research Society*, 56(5), 495-503.
Fisher, R. A. (1950). The significance of deviations from expectation in a Poisson series.
*Biometrics*, 6(1), 17-24.

"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import chdtri

from meio.estimate.history import (
    DEFAULT_DATE_FORMAT,
    QUANTUM,
    HistorySource,
    NetworkRange,
    check_counted_rules,
    check_known_keys,
    collect,
    fixed_point,
    flag,
    id_rules,
    in_range,
    number,
    numbered,
    quantity_rules,
    require,
    rule_counts,
    scan_history,
    table_schema,
    text_id,
    timestamp,
)
from meio.io.validate import Rule

PERIOD_DAYS = {"day": 1, "week": 7}
#: Fewest periods behind an estimate (a sample standard deviation needs two).
MIN_PERIODS = 2
#: Syntetos–Boylan cut-offs of the average inter-demand interval and the squared CV of sizes.
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
#: Smooth demand is modelled as normal when its mean is at least this many standard deviations.
NORMAL_MIN_MEAN_TO_SD = 3.0
#: Level of the index-of-dispersion test that separates Poisson from negative-binomial counts.
DISPERSION_TEST_LEVEL = 0.01
#: Most stage-periods one second pass groups at once (bounds its memory to about 1.5 GB).
MAX_PERIOD_GROUPS = 20_000_000

_KEYS = ["network", "stage"]
_SHOWN = ("network", "stage", "date")
#: The sums behind the estimates, and their types (per stage, from either pass).
_STATISTICS = {"_observed": pl.UInt32, "stockout_periods": pl.UInt32, "_s1": pl.Int128,
               "_s2": pl.Int128, "nonzero_periods": pl.UInt32, "_fractional": pl.UInt32,
               "forecast_periods": pl.UInt32, "_e1": pl.Int128, "_e2": pl.Int128}
# 1970-01-01 was a Thursday: (day + 3) // 7 numbers the weeks that start on a Monday.
_MONDAY_SHIFT = 3


@dataclass(frozen=True)
class DemandOptions:
    """How the demand history is read and cut into periods."""

    period: str = "day"
    stockout_column: str | None = None
    date_format: str = DEFAULT_DATE_FORMAT
    start: dt.date | None = None
    end: dt.date | None = None
    #: Only these networks' records (one partition of the history; None: all).
    networks: NetworkRange | None = None


def demand_diagnostics(source: HistorySource, options: DemandOptions,
                       known_stages: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per stage of the history with its demand estimates (see the module docstring).

    Parameters
    ----------
    source
        The demand history (path or table).
    options
        Period, out-of-stock column, date format and an optional common window.
    known_stages
        ``network``, ``stage`` of the stages table; history rows of other stages are an error.

    Raises
    ------
    meio.InputError
        For the first broken row rule (ids, dates, quantities, forecasts, unknown stages).

    """
    whole = scan_history(source, "demand")
    schema = table_schema(whole, "demand")
    scan = in_range(whole, options.networks)
    require(schema, "demand", ("network", "stage", "date", "quantity"))
    has_forecast = "forecast" in schema
    prepared = _prepared(schema, options)
    rules = _rules(schema, options, has_forecast)
    per_stage = collect(
        _in_order(scan.with_columns(**prepared)).group_by(_KEYS).agg(
            *_stage_aggregates(options, has_forecast), *rule_counts(rules)
        ),
        "demand",
    )
    # rows numbered in the whole file, whatever share of it this call reads
    rows = in_range(numbered(whole), options.networks).with_columns(**prepared)
    check_counted_rules(per_stage, rules, rows, "demand", _SHOWN)
    if known_stages is not None:
        check_known_keys(per_stage, known_stages, rows, "demand", "stage",
                         "must name a stage (network, stage) of the stages table", _SHOWN)
    windows = _windows(per_stage.sort(_KEYS), options)
    if options.period == "day":
        in_order = (pl.col("_runs") == 1) & (pl.col("_unordered") == 0)
        direct, counted = windows.filter(in_order), windows.filter(~in_order)
    else:
        direct, counted = windows.clear(), windows
    parts = [direct] if direct.height else []
    for bucket in _buckets(counted):
        parts.append(_period_statistics(scan, prepared, bucket, options, has_forecast))
    columns = [*_KEYS, "rows", "_lo", "_hi", *_STATISTICS]
    statistics = pl.concat([part.select(columns) for part in parts]) if parts else windows.select(
        *_KEYS, "rows", "_lo", "_hi").with_columns(
        pl.lit(0, dtype).alias(name) for name, dtype in _STATISTICS.items())
    return _estimates(statistics.sort(_KEYS), options)


def _prepared(schema: pl.Schema, options: DemandOptions) -> dict[str, pl.Expr]:
    """Typed working columns: ids as text, day number, quantity (float and fixed point), flags."""
    quantity = number(schema, "quantity", "demand")
    columns = {
        "network": text_id("network"),
        "stage": text_id("stage"),
        "_day": timestamp(schema, "date", "demand", options.date_format).dt.date().cast(pl.Int32),
        "_quantity": quantity,
        "_qfix": fixed_point(quantity),
        "_out": (flag(schema, options.stockout_column, "demand") if options.stockout_column
                 else pl.lit(False)),
    }
    if "forecast" in schema:
        columns["_forecast"] = number(schema, "forecast", "demand")
        columns["_ffix"] = fixed_point(columns["_forecast"])
    return columns


def _rules(schema: pl.Schema, options: DemandOptions, has_forecast: bool) -> list[Rule]:
    """Row rules of the demand table, in the order they are reported."""
    text_dates = schema["date"] in (pl.String, pl.Null)
    rules = [
        *id_rules(("network", "stage")),
        Rule("date", f"must be a date in the form {options.date_format}" if text_dates
             else "must not be null", pl.col("_day").is_null()),
        *quantity_rules("quantity", pl.col("_quantity"), required=True),
    ]
    if has_forecast:
        rules += quantity_rules("forecast", pl.col("_forecast"), required=False)
    return rules


def _in_order(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Mark records that start a run of their stage, and those not later than the one before.

    A stage with one run and no such record lists each day once, in order — the layout of most
    exports — so its records are its periods. Row-wise with the row before: streams.
    """
    same = (pl.col("network") == pl.col("network").shift(1)) & (pl.col("stage") == pl.col("stage").shift(1))
    return frame.with_columns(
        _run_start=~same.fill_null(False),
        _unordered=(same & (pl.col("_day") <= pl.col("_day").shift(1))).fill_null(False),
    )


def _stage_aggregates(options: DemandOptions, has_forecast: bool) -> list[pl.Expr]:
    """Per-stage aggregates of the first pass; with daily periods, the statistics as well.

    They are the final statistics of the stages whose records are their days (one run, in
    order: :func:`_in_order`); other stages take the second pass.
    """
    day = pl.col("_day")
    aggregates = [pl.len().alias("rows"), day.min().alias("_first"), day.max().alias("_last")]
    if options.period != "day":
        return aggregates
    in_window = day.is_between(*_day_numbers(options)) if options.start else pl.lit(True)
    return [*aggregates, pl.col("_run_start").sum().alias("_runs"),
            pl.col("_unordered").sum().alias("_unordered"),
            *_statistics(in_window & ~pl.col("_out"), in_window & pl.col("_out"),
                         pl.col("_qfix"), pl.col("_quantity") != pl.col("_quantity").floor(),
                         pl.col("_ffix") if has_forecast else None)]


def _statistics(use: pl.Expr, out: pl.Expr, quantity: pl.Expr, fractional: pl.Expr,
                forecast: pl.Expr | None) -> list[pl.Expr]:
    """Sums behind the estimates over periods (rows of records or of period totals).

    ``use`` marks in-stock periods, ``out`` out-of-stock ones, ``quantity`` is fixed point and
    ``forecast`` (fixed point, null where missing) may be absent.
    """
    statistics = [
        use.sum().alias("_observed"),
        out.sum().alias("stockout_periods"),
        pl.when(use).then(quantity).sum().alias("_s1"),
        pl.when(use).then(quantity * quantity).sum().alias("_s2"),
        (use & (quantity > 0)).sum().alias("nonzero_periods"),
        (use & fractional).sum().alias("_fractional"),
    ]
    if forecast is None:
        return [*statistics, pl.lit(0, pl.UInt32).alias("forecast_periods"),
                pl.lit(0, pl.Int128).alias("_e1"), pl.lit(0, pl.Int128).alias("_e2")]
    with_forecast = use & forecast.is_not_null()
    error = quantity - forecast
    return [*statistics, with_forecast.sum().alias("forecast_periods"),
            pl.when(with_forecast).then(error).sum().alias("_e1"),
            pl.when(with_forecast).then(error * error).sum().alias("_e2")]


def _day_numbers(options: DemandOptions) -> tuple[int, int]:
    """The common window as day numbers since 1970-01-01."""
    epoch = dt.date(1970, 1, 1)
    return (options.start - epoch).days, (options.end - epoch).days


def _windows(per_stage: pl.DataFrame, options: DemandOptions) -> pl.DataFrame:
    """Each stage's window as period numbers ``_lo``..``_hi`` (whole periods only)."""
    if options.start is not None:
        first, last = (pl.lit(day, pl.Int32) for day in _day_numbers(options))
    else:
        first, last = pl.col("_first"), pl.col("_last")
    if options.period == "day":
        low, high = first, last
    else:
        low = (first + _MONDAY_SHIFT + 6) // 7
        high = (last + _MONDAY_SHIFT + 1) // 7 - 1
    return per_stage.with_columns(_lo=low.cast(pl.Int32), _hi=high.cast(pl.Int32))


def _buckets(windows: pl.DataFrame) -> list[pl.DataFrame]:
    """Stages cut into groups whose stage-periods fit one second pass (:data:`MAX_PERIOD_GROUPS`).

    A stage has at most as many periods with records as it has records or window periods.
    """
    if windows.height == 0:
        return []
    load = pl.min_horizontal(pl.col("rows").cast(pl.Int64),
                             (pl.col("_hi") - pl.col("_lo") + 1).clip(lower_bound=0).cast(pl.Int64))
    bucket = windows.with_columns(_bucket=(load.cum_sum() - load) // MAX_PERIOD_GROUPS)
    return bucket.partition_by("_bucket", maintain_order=True, include_key=False)


def _period_statistics(scan: pl.LazyFrame, prepared: dict[str, pl.Expr], windows: pl.DataFrame,
                       options: DemandOptions, has_forecast: bool) -> pl.DataFrame:
    """Second pass: records summed per stage and period, then the sums over periods.

    Runs on the stages of ``windows`` only (one bucket), keyed by an integer code (cheaper to hash
    than ids).
    """
    index = windows.select(*_KEYS, "rows", "_lo", "_hi").with_row_index("_code")
    day = pl.col("_day")
    period = day if options.period == "day" else (day + _MONDAY_SHIFT) // 7
    per_period = [
        pl.col("_qfix").sum().alias("_q"),
        pl.col("_out").any().alias("_out"),
        (pl.col("_quantity") != pl.col("_quantity").floor()).any().alias("_fraction"),
    ]
    if has_forecast:
        per_period += [pl.col("_ffix").sum().alias("_f"), pl.col("_ffix").is_null().any().alias("_nof")]
    forecast = (pl.when(~pl.col("_nof")).then(pl.col("_f")) if has_forecast else None)
    sums = collect(
        scan.with_columns(**prepared)
        .join(index.lazy().select(*_KEYS, "_code", "_lo", "_hi"), on=_KEYS, how="inner")
        .with_columns(_period=period)
        .filter(pl.col("_period").is_between(pl.col("_lo"), pl.col("_hi")))
        .group_by("_code", "_period").agg(per_period)
        .group_by("_code").agg(_statistics(~pl.col("_out"), pl.col("_out"), pl.col("_q"),
                                           pl.col("_fraction"), forecast)),
        "demand",
    )
    return index.join(sums, on="_code", how="left").drop("_code").with_columns(
        *(pl.col(name).fill_null(0) for name in _STATISTICS)
    )


def _estimates(statistics: pl.DataFrame, options: DemandOptions) -> pl.DataFrame:
    """Mean, standard deviation, class and distribution from the exact sums of each stage."""
    n = pl.col("periods_used").cast(pl.Float64)
    k = pl.col("nonzero_periods").cast(pl.Float64)
    m = pl.col("forecast_periods").cast(pl.Float64)
    s1, s2 = pl.col("_s1").cast(pl.Float64), pl.col("_s2").cast(pl.Float64)
    variance = ((s2 - s1 * s1 / n) / (n - 1)).clip(lower_bound=0.0) / QUANTUM**2
    size_variance = ((s2 - s1 * s1 / k) / (k - 1)).clip(lower_bound=0.0) / QUANTUM**2
    size_mean = s1 / k / QUANTUM
    from_forecast = pl.col("forecast_periods") >= MIN_PERIODS
    frame = statistics.with_columns(
        periods=(pl.col("_hi") - pl.col("_lo") + 1).clip(lower_bound=0),
    ).with_columns(
        periods_used=(pl.col("periods") - pl.col("stockout_periods").cast(pl.Int32)).clip(lower_bound=0),
    ).with_columns(
        demand_mean=pl.when(n > 0).then(s1 / n / QUANTUM),
        demand_sd=pl.when(from_forecast).then(
            (pl.col("_e2").cast(pl.Float64) / m).sqrt() / QUANTUM
        ).when(n >= MIN_PERIODS).then(variance.sqrt()),
        sd_source=pl.when(from_forecast).then(pl.lit("forecast_error"))
        .when(n >= MIN_PERIODS).then(pl.lit("history")),
        forecast_bias=pl.when(m > 0).then(pl.col("_e1").cast(pl.Float64) / m / QUANTUM),
        adi=pl.when(k > 0).then(n / k),
        cv2=pl.when(k >= 2).then(size_variance / (size_mean * size_mean)),
        count_data=pl.col("_fractional") == 0,
        estimated=n >= MIN_PERIODS,
        _sd_periods=pl.when(from_forecast).then(m).otherwise(n),
    )
    frame = frame.with_columns(
        demand_class=_class(),
        dispersion=pl.when(pl.col("demand_mean") > 0)
        .then(pl.col("demand_sd") ** 2 / pl.col("demand_mean")),
        _dispersion_limit=pl.Series(_dispersion_limit(frame["_sd_periods"].to_numpy())),
    )
    first, last = _window_dates(options)
    return frame.with_columns(
        demand_distribution=pl.when(pl.col("estimated")).then(_distribution()),
        kind=pl.lit("demand"),
        period=pl.lit(options.period),
        window_start=first,
        window_end=last,
    ).select(
        "kind", *_KEYS, "period", "window_start", "window_end", "rows", "periods", "stockout_periods",
        "periods_used", "nonzero_periods", "forecast_periods", "demand_mean", "demand_sd", "sd_source",
        "forecast_bias", "adi", "cv2", "demand_class", "dispersion", "count_data",
        "demand_distribution", "estimated",
    )


def _class() -> pl.Expr:
    """Syntetos–Boylan class from ``adi`` and ``cv2`` (null ``cv2`` counts as 0)."""
    frequent = pl.col("adi") < ADI_CUTOFF
    steady = pl.col("cv2").fill_null(0.0) < CV2_CUTOFF
    return (
        pl.when(pl.col("adi").is_null()).then(None)
        .when(frequent & steady).then(pl.lit("smooth"))
        .when(frequent).then(pl.lit("erratic"))
        .when(steady).then(pl.lit("intermittent"))
        .otherwise(pl.lit("lumpy"))
    )


def _dispersion_limit(periods: np.ndarray) -> np.ndarray:
    """Largest index of dispersion ``s²/x̄`` Poisson counts reach at the test level, per sample size."""
    dof = np.asarray(periods, dtype=np.float64) - 1.0
    limit = np.full(dof.shape, np.inf)
    usable = dof >= 1
    limit[usable] = chdtri(dof[usable], DISPERSION_TEST_LEVEL) / dof[usable]
    return limit


def _distribution() -> pl.Expr:
    """The distribution rule of the module docstring."""
    mean, sd = pl.col("demand_mean"), pl.col("demand_sd")
    return (
        pl.when((mean <= 0) | (sd <= 0)).then(pl.lit("normal"))
        .when((pl.col("demand_class") == "smooth") & (mean >= NORMAL_MIN_MEAN_TO_SD * sd))
        .then(pl.lit("normal"))
        .when(pl.col("count_data") & (pl.col("dispersion") <= pl.col("_dispersion_limit")))
        .then(pl.lit("poisson"))
        .when(pl.col("count_data")).then(pl.lit("negative_binomial"))
        .otherwise(pl.lit("gamma"))
    )


def _window_dates(options: DemandOptions) -> tuple[pl.Expr, pl.Expr]:
    """First and last day of the whole periods of each stage's window."""
    if options.period == "day":
        return pl.col("_lo").cast(pl.Date), pl.col("_hi").cast(pl.Date)
    return ((pl.col("_lo") * 7 - _MONDAY_SHIFT).cast(pl.Date),
            (pl.col("_hi") * 7 - _MONDAY_SHIFT + 6).cast(pl.Date))
