"""Compare strategies on the same virtual patients (common random numbers).

Every arm runs the same patient ids with the same seed, so patient k has the same
baseline and the same luck for the same purpose in every arm; differences between arms
come from the strategy, not from sampling. For each outcome the comparison gives each
arm's estimate with its 95% CI and, against the first arm, the mean paired difference
across the same patients with its 95% CI and the percent of patients better off, worse
off and unchanged. A time to an event is compared as the difference of the arms'
Kaplan-Meier restricted mean times to the horizon, with a paired interval (from each
patient's influence on both curves, ``stats.PairedDifference.rmst_difference``); its
better/worse shares are per patient, ordered only where the earlier time is an event.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._version import __version__
from .center_stats import paired_center_differences
from .economics import calculate_icers, optimal_strategy
from .errors import InputError
from .outcomes import (
    BETTER,
    CohortSummary,
    Metric,
    PairedRatioDifference,
    better_of,
    cea_columns,
    difference_estimator,
)
from .runner import ArmsChunk, ArmsJob, Reducer, Summaries, Tables, arms_job, execute
from .scenario import Scenario, scenario_data, scenario_sha256
from .scenario.disease import calibration_note
from .stats import Z95, PairedDifference

#: a per-outcome paired accumulator: a difference of means, or of rates
Paired = PairedDifference | PairedRatioDifference

__all__ = ["BETTER", "SHARED_PATHS", "ComparisonResult", "arm_differences", "compare"]

log = logging.getLogger(__name__)

# What every arm must share for "the same patients in every arm" to hold and for costs and
# QALYs to be comparable: who the patients are (population, natural history, seed), how
# long and how often they are followed, and how outcomes are valued and defined.
SHARED_PATHS: tuple[tuple[str, ...], ...] = (
    ("seed",),
    ("population",),
    ("disease",),
    ("horizon_days",),
    ("visits",),
    ("outcomes",),
    ("economics", "currency"),
    ("economics", "discount_rate_per_year"),
    ("economics", "utilities"),
    ("center", "arrivals"),  # the same new patients on the same days
)
# How the decision is valued: the incremental analysis values every strategy with one
# willingness to pay and one cost-effectiveness horizon (the first arm's), so arms must
# share them whatever else they are allowed to differ in.
DECISION_PATHS: tuple[tuple[str, ...], ...] = (
    ("economics", "willingness_to_pay_per_qaly"),
    ("economics", "cea_horizon"),
)
_MAX_LISTED = 12


# An arm that gives IVIG to at least this share of its patients in the horizon's last
# year is still giving it when the simulation stops (extrapolation_note).
STILL_GIVING = 0.02


def extrapolation_note(
    names: Sequence[str],
    scenarios: Sequence[Scenario],
    metrics: Sequence[dict[str, Any]],
    cost_col: str,
) -> str | None:
    """One sentence when the lifetime analysis cuts off IVIG that an arm is still giving.

    The lifetime extrapolation carries the last state forward and gives no IVIG after the
    horizon (docs/model.md section 5, Lifetime). An arm that still gave IVIG to at least
    2% of its patients in the horizon's last year (a rescue rule still firing, new
    courses of retreat_when, cycles of extend_when) would go on giving it: the
    extrapolation leaves those courses out, and carries for life the state just after
    them. With the shipped 2-year horizon rescue gives IVIG to 32% of its patients in
    year 2, and first_line vs rescue is 19,900 GBP/QALY against 7,300 with 40 simulated
    years. None when no arm is, or for costs and QALYs over the simulated horizon only. A
    placebo arm's infusions are not IVIG and are left out."""
    if cost_col != "cost_lifetime":
        return None
    giving = []
    for name, scn, m in zip(names, scenarios, metrics, strict=True):
        share = m.get("ivig_given_final_year", {}).get("mean")
        placebo = scn.regimen.ivig is not None and scn.regimen.ivig.placebo
        if share is not None and share >= STILL_GIVING and not placebo:
            giving.append((name, f"{100 * share:.1f}%"))
    if not giving:
        return None
    one = len(giving) == 1
    horizon_days = scenarios[0].horizon_days  # the same in every arm (same patients)
    return (
        f"Extrapolation: {', '.join(n for n, _ in giving)} gave IVIG to "
        + ", ".join(p for _, p in giving)
        + f" of {'its' if one else 'their'} patients in the simulated horizon's last year,"
        f" but the lifetime extrapolation gives no IVIG after day {horizon_days}: the"
        f" courses {'this arm' if one else 'these arms'} would go on to give are left out"
        " of the lifetime cost, and the state just after them is carried for life"
        " (docs/model.md section 5, Lifetime). Check the decision with a longer horizon,"
        " e.g. 10 years (--set horizon_days=3653;"
        " scenarios/sweeps/horizon_first_line_vs_rescue.yaml sweeps 2 to 40)."
    )


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: value}


def arm_differences(
    scns: Sequence[Scenario],
    names: Sequence[str],
    seed_given: bool = False,
    paths: Sequence[tuple[str, ...]] = SHARED_PATHS,
) -> list[str]:
    """Where arms differ in what they must share (``paths``, by default ``SHARED_PATHS``),
    one line per path: ``"population.female: first_line 0.7333, other 0.5"``. The seed is
    not compared when it is given for the whole comparison (``seed_given``)."""
    dumps = [s.model_dump(mode="json", by_alias=True) for s in scns]
    lines: list[str] = []
    for path in paths:
        if path == ("seed",) and seed_given:
            continue
        flat = []
        for d in dumps:
            cur: Any = d
            for part in path:
                cur = cur.get(part) if isinstance(cur, dict) else None
            flat.append(_leaves(cur, ".".join(path)))
        keys = sorted(set().union(*flat))
        for key in keys:
            values = [f.get(key, "(absent)") for f in flat]
            if any(v != values[0] for v in values[1:]):
                shown = ", ".join(
                    f"{n} {v!r}" if isinstance(v, str) else f"{n} {v}"
                    for n, v in zip(names, values, strict=True)
                )
                lines.append(f"{key}: {shown}")
    return lines


def check_same_patients(
    scns: Sequence[Scenario],
    names: Sequence[str],
    seed_given: bool,
    allow_different: bool,
    command: str = "compare",
) -> list[str]:
    """Raise InputError when arms differ in what they must share, unless allowed; return
    the differences (empty when the arms see the same patients). ``command`` is the
    ``simulate`` command asking: only ``compare`` has --allow-different-populations, so
    the others advise running it instead.

    Arms with and without an infusion center cannot be compared at all (a center's
    patients are its arrivals; the others are a fixed cohort), allowed or not."""
    with_center = [n for n, s in zip(names, scns, strict=True) if s.center is not None]
    if with_center and len(with_center) < len(scns):
        without = [n for n in names if n not in with_center]
        raise InputError(
            "some strategies have an infusion center (center:) and some do not (with:"
            f" {', '.join(with_center)}; without: {', '.join(without)}). A center's"
            " patients are its arrivals, so give every strategy the same center block (its"
            " chairs and stock may differ)"
        )
    valued = arm_differences(scns, names, paths=DECISION_PATHS)
    if valued:
        raise InputError(
            "the strategies differ in how the decision is valued: the incremental analysis"
            " and the net monetary benefit value every strategy with one willingness to pay"
            " and one cost-effectiveness horizon. Give every scenario the same"
            " economics.willingness_to_pay_per_qaly and economics.cea_horizon (a sweep can"
            " vary them for all strategies at once)",
            problems=valued,
        )
    diffs = arm_differences(scns, names, seed_given)
    if diffs and not allow_different:
        shown = diffs[:_MAX_LISTED]
        if len(diffs) > _MAX_LISTED:
            shown.append(f"and {len(diffs) - _MAX_LISTED} more")
        advice = (
            ", or pass --allow-different-populations to compare anyway (the report then says"
            " the arms are not the same patients):"
            if command == "compare"
            else f" (`simulate {command}` compares them only on the same patients; to compare"
            " arms that differ anyway, run `simulate compare --allow-different-populations`"
            " on their scenario files):"
        )
        raise InputError(
            "the strategies differ in what a comparison must keep the same (the patients, "
            "their follow-up, or how outcomes are valued), so differences between arms would "
            "not be treatment effects. Make these the same in every scenario (e.g. through "
            "`extends: base.yaml`)" + advice,
            problems=shown,
        )
    return diffs


def _compared(specs: list[Metric]) -> list[Metric]:
    return [m for m in specs if m.name != "cpk_baseline_u_per_l"] + [
        m for m in specs if m.name == "cpk_baseline_u_per_l"
    ]


def _nmb(table: dict[str, np.ndarray], wtp: float, cols: tuple[str, str]) -> np.ndarray:
    cost, qaly = cols
    return wtp * table[qaly] - table[cost]


def _merge_into(total: dict[Any, Any], part: dict[Any, Any]) -> None:
    for key, pd in part.items():
        if key in total:
            total[key].merge(pd)
        else:
            total[key] = pd


class PairedVsFirst(Reducer):
    """Per arm after the first and per outcome: the paired per-patient difference from
    the first arm (``self.paired``, one dict per arm)."""

    def __init__(self, arms: int) -> None:
        self.paired: list[dict[str, Paired]] = [{} for _ in range(arms - 1)]

    def part(self, chunk: ArmsChunk) -> list[dict[str, Paired]]:
        tables = chunk.tables
        out = []
        for table in tables[1:]:
            acc = {}
            for m in _compared(chunk.summaries[0].specs):
                if m.column not in table or m.column not in tables[0]:
                    continue
                a, b = (np.asarray(t[m.column], dtype=np.float64) for t in (tables[0], table))
                if m.kind == "rate":
                    # a rate (sum over sum) has no per-patient difference: the difference
                    # of the two rates, with a delta-method interval that uses the pairing
                    rd = PairedRatioDifference()
                    rd.add(
                        a,
                        np.asarray(tables[0][m.denominator], dtype=np.float64),
                        b,
                        np.asarray(table[m.denominator], dtype=np.float64),
                    )
                    acc[m.name] = rd
                    continue
                if m.kind == "time" and m.event_column:
                    # times to the event or to censoring: ordered only where the earlier
                    # of the two is an event
                    pd = PairedDifference(tol=1e-9, censored=True)
                    seen_a = np.asarray(tables[0][m.event_column], dtype=bool)
                    seen_b = np.asarray(table[m.event_column], dtype=bool)
                    pd.add(a, b, observed=(seen_a, seen_b))
                else:
                    pd = PairedDifference(tol=1e-9)
                    pd.add(a, b)
                acc[m.name] = pd
            out.append(acc)
        return out

    def merge(self, part: list[dict[str, Paired]]) -> None:
        for total, p in zip(self.paired, part, strict=True):
            _merge_into(total, p)


class NetBenefitPairs(Reducer):
    """Net monetary benefit at ``wtp`` paired between every two arms (``self.nmb[(i, j)]``,
    i < j: arm j - arm i), for the incremental analysis against whichever arm turns out
    optimal."""

    worker_state = ("wtp", "columns")

    def __init__(self, wtp: float, columns: tuple[str, str]) -> None:
        self.wtp = wtp
        self.columns = columns
        self.nmb: dict[tuple[int, int], PairedDifference] = {}

    def part(self, chunk: ArmsChunk) -> dict[tuple[int, int], PairedDifference]:
        values = [_nmb(t, self.wtp, self.columns) for t in chunk.tables]
        out = {}
        for i in range(len(values)):
            for j in range(i + 1, len(values)):
                pd = PairedDifference(tol=1e-9)
                pd.add(values[i], values[j])
                out[(i, j)] = pd
        return out

    def merge(self, part: dict[tuple[int, int], PairedDifference]) -> None:
        _merge_into(self.nmb, part)


@dataclass
class ComparisonResult:
    names: list[str]
    scenarios: list[Scenario]
    seed: int
    patients: int
    engine: str
    summaries: list[CohortSummary]
    paired: list[dict[str, Paired]]
    nmb: dict[tuple[int, int], PairedDifference]
    willingness_to_pay: float
    arm_differences: list[str] = field(default_factory=list)

    @property
    def same_patients(self) -> bool:
        """True when every arm ran the same virtual patients (common random numbers)."""
        return not self.arm_differences

    def outcomes(self) -> dict[str, dict[str, Any]]:
        """Per outcome: each arm's estimate and the paired difference against arm 1."""
        arms_metrics = [s.metrics() for s in self.summaries]
        out: dict[str, dict[str, Any]] = {}
        first = self.names[0]
        # center metrics are per center replication: paired over replications
        c0 = self.summaries[0].center
        center_diffs = [
            paired_center_differences(c0, s.center)
            if c0 is not None and s.center is not None
            else {}
            for s in self.summaries[1:]
        ]
        for name, m0 in arms_metrics[0].items():
            if any(name not in am for am in arms_metrics[1:]):
                continue  # e.g. survival at 5 years when an arm's horizon is shorter
            better = better_of(name)
            time = m0["estimator"] == "km_median"
            entry: dict[str, Any] = {
                "label": m0["label"],
                "unit": m0["unit"],
                "better": better,
                "estimator": m0["estimator"],
                "arms": {
                    arm: {"mean": am[name]["mean"], "ci95": am[name]["ci95"], "n": am[name]["n"]}
                    for arm, am in zip(self.names, arms_metrics, strict=True)
                },
                "differences": {},
            }
            if time:
                # A difference of medians has no simple interval; the difference is of
                # restricted mean times (areas under the Kaplan-Meier curves), which the
                # row states, next to each arm's own restricted mean.
                for arm, am in zip(self.names, arms_metrics, strict=True):
                    entry["arms"][arm].update(
                        rmst=am[name]["rmst"], rmst_ci95=am[name]["rmst_ci95"]
                    )
            entry["difference_estimator"] = difference_estimator(
                m0["estimator"], m0.get("rmst_to_day", 0)
            )
            for j, (arm, acc) in enumerate(zip(self.names[1:], self.paired, strict=True), start=1):
                if name in center_diffs[j - 1]:
                    diff = _difference(center_diffs[j - 1][name], better, f"{arm} - {first}")
                    diff["estimator"] = "paired_mean_over_centers_difference"
                    entry["differences"][arm] = diff
                    continue
                if name not in acc:
                    continue
                diff = _difference(acc[name].to_dict(), better, f"{arm} - {first}")
                if time:
                    a, b = arms_metrics[0][name], arms_metrics[j][name]
                    dm = b["rmst"] - a["rmst"]
                    # paired: from each patient's influence on the two curves' areas,
                    # when every patient has a time in both arms (as always here)
                    pair = acc[name]
                    got = (
                        pair.rmst_difference(int(a["rmst_to_day"]))
                        if isinstance(pair, PairedDifference) and pair.n == a["n"] == b["n"]
                        else None
                    )
                    if got is not None:
                        half = Z95 * got[1]
                    else:  # not every patient in both arms: the two curves' own variances
                        half = Z95 * math.sqrt(a["rmst_variance"] + b["rmst_variance"])
                    # the better/worse/same shares stay per patient (paired, on each
                    # patient's time to the event or to censoring)
                    diff.update(
                        mean_difference=dm,
                        ci95=[dm - half, dm + half],
                        interval="paired_influence" if got is not None else "two_curves_unpaired",
                    )
                elif m0["estimator"] == "proportion" and isinstance(acc[name], PairedDifference):
                    # Newcombe's paired score interval, each arm's proportion over its own
                    # patients (the Wald interval under-covers when few patients differ,
                    # and is [0, 0] when none does)
                    ci = acc[name].paired_proportion_ci()
                    if ci is not None:
                        diff["ci95"] = [ci[0], ci[1]]
                    diff["interval"] = "newcombe_paired_score" if ci is not None else "delta_method"
                diff["estimator"] = entry["difference_estimator"]
                entry["differences"][arm] = diff
            out[name] = entry
        return out

    def economics(self) -> dict[str, Any]:
        """Incremental cost, QALYs, ICER and net monetary benefit against the first arm."""
        econ = self.scenarios[0].economics
        cost_col, qaly_col = cea_columns(self.scenarios[0])
        res: dict[str, Any] = {
            "willingness_to_pay_per_qaly": self.willingness_to_pay,
            "currency": econ.currency,
            "horizon": econ.cea_horizon,
            "cost": cost_col,
            "effect": qaly_col,
            "discount_rate_per_year": econ.discount_rate_per_year,
            "perspective": econ.perspective,
            "price_year": econ.price_year,
            "arms": {},
        }
        outs = self.outcomes()
        for j, arm in enumerate(self.names[1:], start=1):
            nmb = self.nmb[(0, j)]
            dc = outs[cost_col]["differences"][arm]["mean_difference"]
            dq = outs[qaly_col]["differences"][arm]["mean_difference"]
            if (dq > 0 and dc <= 0) or (dq == 0 and dc < 0):
                verdict, icer = "dominant (less costly, at least as effective)", None
            elif (dq < 0 and dc >= 0) or (dq == 0 and dc > 0):
                verdict, icer = "dominated (more costly, not more effective)", None
            elif dq == 0 and dc == 0:
                verdict, icer = "identical", None
            else:
                icer = dc / dq
                verdict = "more effective, more costly" if dq > 0 else "less effective, cheaper"
            res["arms"][arm] = {
                "incremental_cost": dc,
                "incremental_qaly": dq,
                "icer_per_qaly": icer,
                "verdict": verdict,
                "incremental_net_monetary_benefit": _difference(
                    nmb.to_dict(), "higher", f"{arm} - {self.names[0]}"
                ),
            }
        res["incremental_analysis"] = self.incremental_analysis()
        return res

    def incremental_analysis(self) -> dict[str, Any]:
        """dampack-style incremental analysis of all arms (``economics.calculate_icers``) on
        mean discounted costs and QALYs; the optimal arm at the scenario's willingness to
        pay, the range of willingness to pay over which each frontier arm is optimal, and
        each arm's net monetary benefit against the optimal one (paired, 95% CI)."""
        arms = [s.metrics() for s in self.summaries]
        cost_col, qaly_col = cea_columns(self.scenarios[0])
        cost = [m[cost_col]["mean"] for m in arms]
        qaly = [m[qaly_col]["mean"] for m in arms]
        rows = calculate_icers(cost, qaly, self.names)
        wtp = self.willingness_to_pay
        best = optimal_strategy(rows, wtp)
        b = self.names.index(best)
        frontier = [r for r in rows if r.status == "ND"]
        ranges = {}
        for k, r in enumerate(frontier):
            lo = 0.0 if k == 0 else r.icer
            hi = frontier[k + 1].icer if k + 1 < len(frontier) else None
            ranges[r.strategy] = [lo, hi]
        table = []
        for r in rows:
            i = self.names.index(r.strategy)
            row = r.to_dict()
            row["net_monetary_benefit"] = wtp * r.effect - r.cost
            row["optimal_for_wtp"] = ranges.get(r.strategy)
            row["net_monetary_benefit_vs_optimal"] = None if i == b else self._nmb_difference(b, i)
            table.append(row)
        return {
            "willingness_to_pay_per_qaly": wtp,
            "currency": self.scenarios[0].economics.currency,
            "effect": qaly_col,
            "cost": cost_col,
            "horizon": self.scenarios[0].economics.cea_horizon,
            "discount_rate_per_year": self.scenarios[0].economics.discount_rate_per_year,
            "perspective": self.scenarios[0].economics.perspective,
            "price_year": self.scenarios[0].economics.price_year,
            "optimal_strategy": best,
            "rows": table,
            # which calibration the result rests on (the answer changes with it)
            "disease_parameters": calibration_note(self.scenarios[0]),
            # IVIG still given at the horizon, which the lifetime extrapolation cuts off
            # (None when no arm gives any)
            "extrapolation": extrapolation_note(self.names, self.scenarios, arms, cost_col),
        }

    def _nmb_difference(self, ref: int, arm: int) -> dict[str, Any]:
        """NMB of ``arm`` minus NMB of ``ref``, paired over patients."""
        if ref < arm:
            d = self.nmb[(ref, arm)].to_dict()
        else:
            d = self.nmb[(arm, ref)].to_dict()
            lo, hi = d["ci95"]
            d = dict(
                d,
                mean_difference=-d["mean_difference"],
                ci95=[None if hi is None else -hi, None if lo is None else -lo],
                higher_pct=d["lower_pct"],
                lower_pct=d["higher_pct"],
            )
        return _difference(d, "higher", f"{self.names[arm]} - {self.names[ref]}")

    def to_frame(self) -> Any:
        """Every outcome of every arm as a tidy pandas DataFrame, with the differences
        from the first arm (and their estimators)."""
        from .frames import comparison_frame

        return comparison_frame(self.outcomes(), self.names[0])

    def plot(self, ax: Any = None) -> Any:
        """The cost-effectiveness plane of the incremental analysis on ``ax`` (or a new
        Figure, returned)."""
        from .frames import new_axes
        from .report.figures import draw_ce_plane

        fig, ax = new_axes(ax, (7.5, 5.0))
        ia = self.incremental_analysis()
        draw_ce_plane(
            ax,
            ia["rows"],
            ia["willingness_to_pay_per_qaly"],
            ia["currency"],
            ia["optimal_strategy"],
            "Cost-effectiveness plane",
            self.scenarios[0].economics.cea_horizon,
        )
        return fig

    def to_json(self) -> dict[str, Any]:
        return {
            "arms": self.names,
            "reference_arm": self.names[0],
            "same_patients": self.same_patients,
            "arm_differences": self.arm_differences,
            "seed": self.seed,
            "patients": self.patients,
            "simulator_version": __version__,
            "scenario_sha256": {
                n: scenario_sha256(s) for n, s in zip(self.names, self.scenarios, strict=True)
            },
            "horizon_days": {
                n: s.horizon_days for n, s in zip(self.names, self.scenarios, strict=True)
            },
            # every arm's scenario as run (defaults and --set applied), as summary.json
            # gives a run's: enough to run the comparison again
            "resolved_scenarios": {
                n: scenario_data(s) for n, s in zip(self.names, self.scenarios, strict=True)
            },
            "outcomes": self.outcomes(),
            "economics": self.economics(),
            "cpk_by_month": {
                n: s.by_month("cpk") for n, s in zip(self.names, self.summaries, strict=True)
            },
            "prednisone_by_month": {
                n: s.prednisone_by_month() for n, s in zip(self.names, self.summaries, strict=True)
            },
            "kaplan_meier": {
                n: s.curves() for n, s in zip(self.names, self.summaries, strict=True)
            },
        }


def _difference(d: dict[str, Any], better: str | None, contrast: str) -> dict[str, Any]:
    out = {
        "contrast": contrast,
        "mean_difference": d["mean_difference"],
        "ci95": d["ci95"],
        "n": d["n"],
    }
    if better == "higher":
        out.update(better_pct=d["higher_pct"], worse_pct=d["lower_pct"], same_pct=d["same_pct"])
    elif better == "lower":
        out.update(better_pct=d["lower_pct"], worse_pct=d["higher_pct"], same_pct=d["same_pct"])
    else:
        out.update(higher_pct=d["higher_pct"], lower_pct=d["lower_pct"], same_pct=d["same_pct"])
    if "undetermined_pct" in d:
        out["undetermined_pct"] = d["undetermined_pct"]
    return out


def arm_names(scns: Sequence[Scenario], files: Sequence[str] | None = None) -> list[str]:
    """Arm labels: scenario names, made unique (a scenario compared with itself)."""
    names: list[str] = []
    for i, scn in enumerate(scns):
        base = scn.name if scn.name != "unnamed scenario" or not files else files[i]
        name, k = base, 2
        while name in names:
            name, k = f"{base} ({k})", k + 1
        names.append(name)
    return names


def compare_job(
    scns: Sequence[Scenario],
    *,
    names: Sequence[str] | None = None,
    patients: int | None = None,
    seed: int | None = None,
    engine: str = "auto",
    workers: int = 1,
    chunk_size: int | None = None,
    sink: Callable[[list[dict[str, np.ndarray]]], None] | None = None,
    check_invariants: bool = True,
    allow_different_populations: bool = False,
    reducers: Sequence[Reducer] = (),
    metrics: frozenset[str] | None = None,
) -> tuple[ArmsJob, Callable[[], ComparisonResult]]:
    """:func:`compare` as a job and the function that gives its result once every
    chunk is merged (input errors are raised here, before anything runs). ``metrics``:
    summarise and pair only these outcomes (a sweep's)."""
    if len(scns) < 2:
        raise ValueError("compare needs at least two scenarios")
    first = scns[0]
    names = list(names) if names is not None else arm_names(scns)
    diffs = check_same_patients(scns, names, seed is not None, allow_different_populations)
    scns = list(scns)
    wtp = first.economics.willingness_to_pay_per_qaly
    summaries = Summaries()
    paired = PairedVsFirst(len(scns))
    nmb = NetBenefitPairs(wtp, cea_columns(first))
    every: list[Reducer] = [summaries, paired, nmb, *reducers]
    if sink is not None:
        every.append(Tables(lambda tables, _logs: sink(tables)))
    job = arms_job(
        scns,
        every,
        patients=patients,
        seed=seed,
        engine=engine,
        workers=workers,
        chunk_size=chunk_size,
        check_invariants=check_invariants,
        desc="compare",
        metrics=metrics,
    )

    def result() -> ComparisonResult:
        return ComparisonResult(
            list(names),
            scns,
            job.seed,
            job.n,
            job.engine,
            summaries.summaries,
            paired.paired,
            nmb.nmb,
            wtp,
            diffs,
        )

    return job, result


def compare(
    scns: Sequence[Scenario],
    *,
    names: Sequence[str] | None = None,
    patients: int | None = None,
    seed: int | None = None,
    engine: str = "auto",
    workers: int = 1,
    chunk_size: int | None = None,
    sink: Callable[[list[dict[str, np.ndarray]]], None] | None = None,
    progress: bool | None = None,
    check_invariants: bool = True,
    dask: str | None = None,
    allow_different_populations: bool = False,
    reducers: Sequence[Reducer] = (),
    metrics: frozenset[str] | None = None,
) -> ComparisonResult:
    """Run every scenario on the same patients and compare them with the first.

    Arms that differ in what a comparison must keep the same (``SHARED_PATHS``: seed,
    population, disease, horizon, visits, outcome definitions, currency, discounting,
    utilities) raise InputError naming the differing paths, unless
    ``allow_different_populations``; the result then lists them in ``arm_differences`` and
    ``same_patients`` is False. Extra ``reducers`` see every chunk of every arm too.
    ``metrics``: summarise and pair only these outcomes."""
    job, result = compare_job(
        scns,
        names=names,
        patients=patients,
        seed=seed,
        engine=engine,
        workers=workers,
        chunk_size=chunk_size,
        sink=sink,
        check_invariants=check_invariants,
        allow_different_populations=allow_different_populations,
        reducers=reducers,
        metrics=metrics,
    )
    execute(job, workers, progress, dask)
    return result()
