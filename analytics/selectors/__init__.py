"""Metric selectors for the dashboard, the CSV exports and the partner API: each is one SQL
query, filterable by a half-open UTC range [start, end), offer, product and source (None =
every source, "" = direct traffic). What each figure means: docs/metrics.md.

- `common`: the filter, the definitions shared by every query (funnel steps, how an event
  maps to a step, how a ledger row matches its line), SQL helpers.
- `direct`: the `*_direct` queries on the source tables, which are also the oracle the tests
  compare the read models with, plus the metrics that always read the source tables.
- `readmodels`: the same metrics over the read models analytics/rollups.py keeps.
- `experiments`: per-arm figures of an experiment.
- `recurring`: subscription figures (MRR and its movements, churn, trial conversion,
  payment-plan completion) over the subscriptions app's tables; `recurring_direct` is their
  oracle, recomputed in Python.

Analytics is the lowest app (DESIGN.md, "Layers"): it may not import storefront, offers or
payments. Their tables are read with raw SQL, the table names taken from the app registry
(`apps.get_model`) at call time, so there is no import and no cycle, and a renamed table
follows its model; the order/line key formats come from core/orderkeys.py. Money comes back
as integer minor units, rates as Decimal (PostgreSQL `numeric`), statistics inside SQL
(`percentile_cont`).
"""

from analytics.selectors.common import (
    ACCEPTED,
    DIRECT,
    FUNNEL_STEPS,
    LINE_KINDS,
    LTV_DAYS,
    OFFERED,
    SESSION_EVENTS,
    MetricFilter,
    _t,
    ledger_matches_line,
    rate,
    source_param,
    step_sql,
)
from analytics.selectors.direct import (
    alerts,
    cohort_ltv_direct,
    funnel_direct,
    offer_risk_window,
    offer_states,
    order_value_by_day_direct,
    order_value_direct,
    refund_rates_direct,
    reliability,
    take_rates_direct,
    time_to_charge,
    traffic_direct,
)
from analytics.selectors.experiments import experiment_arm_stats
from analytics.selectors.readmodels import (
    cohort_ltv,
    funnel,
    order_value,
    order_value_by_day,
    refund_rates,
    take_rates,
    traffic,
)
from analytics.selectors.recurring import (
    mrr_movements,
    plan_completion,
    renewal_revenue,
    trial_conversion,
)
from analytics.selectors.recurring_direct import (
    mrr_movements_direct,
    plan_completion_direct,
    renewal_revenue_direct,
    trial_conversion_direct,
)

__all__ = [
    "ACCEPTED",
    "DIRECT",
    "FUNNEL_STEPS",
    "LINE_KINDS",
    "LTV_DAYS",
    "OFFERED",
    "SESSION_EVENTS",
    "MetricFilter",
    "_t",
    "alerts",
    "cohort_ltv",
    "cohort_ltv_direct",
    "experiment_arm_stats",
    "funnel",
    "funnel_direct",
    "mrr_movements",
    "mrr_movements_direct",
    "ledger_matches_line",
    "offer_risk_window",
    "order_value",
    "order_value_by_day",
    "order_value_by_day_direct",
    "offer_states",
    "order_value_direct",
    "plan_completion",
    "plan_completion_direct",
    "rate",
    "refund_rates",
    "refund_rates_direct",
    "reliability",
    "renewal_revenue",
    "renewal_revenue_direct",
    "source_param",
    "step_sql",
    "take_rates",
    "take_rates_direct",
    "time_to_charge",
    "traffic",
    "traffic_direct",
    "trial_conversion",
    "trial_conversion_direct",
]
