"""Experiment read model: per-arm figures with the sample-size plan and an always-valid verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analytics import selectors, stats
from analytics.models import CONTROL_ARM, Experiment


@dataclass(frozen=True)
class ExperimentReport:
    experiment: Experiment
    planned_per_arm: int
    arms: list[dict[str, Any]]
    metric: str  # what the sequential test compares
    arm_a: str
    arm_b: str
    result: stats.SequentialResult | None
    verdict: str
    notes: list[str] = field(default_factory=list)


def experiment_planned_sample(experiment: Experiment) -> int:
    p1 = float(experiment.baseline_rate)
    p2 = min(0.9999, p1 + float(experiment.min_detectable_effect))
    return stats.sample_size_two_proportions(
        p1=p1, p2=p2, alpha=float(experiment.alpha), power=float(experiment.power)
    )


def experiment_report(experiment: Experiment) -> ExperimentReport:
    """Compare two arms with the mSPRT.

    Between two offer arms the metric is the take rate (took the offer ÷ assigned). Against
    the no-offer control nobody can take the offer, so the metric is purchase conversion (a
    paid order ÷ assigned): does showing the offer cost checkouts? Revenue per visitor (the
    incremental AOV), refund rate and repeat-purchase rate are reported beside it."""
    planned = experiment_planned_sample(experiment)
    rows = {r["arm"]: r for r in selectors.experiment_arm_stats(experiment)}
    arms = []
    for name in experiment.arms:
        r = rows.get(
            name,
            {
                "arm": name,
                "visitors": 0,
                "takers": 0,
                "buyers": 0,
                "gross": 0,
                "net": 0,
                "refunded_buyers": 0,
                "repeat_buyers": 0,
            },
        )
        arms.append(
            {
                **r,
                "take_rate": selectors.rate(r["takers"], r["visitors"]),
                "conversion": selectors.rate(r["buyers"], r["visitors"]),
                "revenue_per_visitor": round(r["net"] / r["visitors"]) if r["visitors"] else None,
                "refund_rate": selectors.rate(r["refunded_buyers"], r["buyers"]),
                "repeat_rate": selectors.rate(r["repeat_buyers"], r["buyers"]),
            }
        )
    offer_arms = [a for a in arms if a["arm"] != CONTROL_ARM]
    if len(offer_arms) >= 2:
        a, b = offer_arms[0], offer_arms[1]
        metric, key = "take rate", "takers"
    else:
        a, b = arms[0], arms[1]  # control first
        metric, key = "purchase conversion", "buyers"
    result = stats.msprt_two_proportions(
        conv_a=a[key],
        n_a=a["visitors"],
        conv_b=b[key],
        n_b=b["visitors"],
        alpha=float(experiment.alpha),
        tau=float(experiment.min_detectable_effect),
    )
    notes = []
    if len(offer_arms) > 2:
        notes.append("Only the first two offer arms are compared; test fewer arms at once.")
    return ExperimentReport(
        experiment=experiment,
        planned_per_arm=planned,
        arms=arms,
        metric=metric,
        arm_a=a["arm"],
        arm_b=b["arm"],
        result=result,
        verdict=stats.verdict(
            result=result, planned_per_arm=planned, arm_a=a["arm"], arm_b=b["arm"]
        ),
        notes=notes,
    )
