"""Partner API: the funnel event log (read only, cursor-paginated, newest first) and the
metrics (read only, over analytics.selectors, with the dashboard's definitions: docs/metrics.md).
Each metric request folds pending changes into the read models first (`rollups_refresh`, as
the dashboard does), so its figures include everything committed before the request."""

from __future__ import annotations

import functools

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from analytics import selectors
from analytics.models import Event, EventName
from analytics.rollups import rollups_refresh
from analytics.selectors import DIRECT, FUNNEL_STEPS, MetricFilter, source_param
from api.filters import (
    BoundedCursor,
    BoundedDateTimeFilter,
    IdFilter,
    QueryParamsCheck,
    UtcDateTimeField,
    query_params_once,
)
from api.reads import ReplicaReads
from core import replica


class EventOut(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id",
            "name",
            "occurred_at",
            "order_id",
            "customer_id",
            "offer_id",
            "product_id",
            "variant",
            "source",
            "medium",
            "campaign",
            "amount",
            "currency",
            "reason",
        ]


class EventFilter(django_filters.FilterSet):
    name = django_filters.MultipleChoiceFilter(choices=EventName.choices)
    source = django_filters.CharFilter()
    order_id = IdFilter()
    offer_id = IdFilter()
    occurred_after = BoundedDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = BoundedDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["name", "source", "order_id", "offer_id"]


class EventCursor(BoundedCursor):
    # A stable order on an append-only log: pages never skip or repeat rows as events arrive.
    ordering = ("-occurred_at", "-id")


class EventViewSet(
    ReplicaReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = EventOut
    filterset_class = EventFilter
    pagination_class = EventCursor
    filter_backends = [QueryParamsCheck, django_filters.rest_framework.DjangoFilterBackend]

    def get_queryset(self):
        return Event.objects.all()


# --- Metrics: the dashboard's figures, read through analytics.selectors --------------------


class MetricQuery(serializers.Serializer):
    """The MetricFilter as query parameters; every metric takes them."""

    start = UtcDateTimeField(
        required=False,
        help_text="Start of the half-open range [start, end), included; ISO 8601, UTC. The "
        "dashboard's day D is [D 00:00Z, D+1 00:00Z). Event figures count events in the "
        "range; order figures (revenue, take and refund rates) count orders paid in it.",
    )
    end = UtcDateTimeField(
        required=False,
        help_text="End of the half-open range [start, end), not included; ISO 8601, UTC.",
    )
    offer_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    product_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    # Any text: sources are stored as sent (no trimming). Absent or empty: no filter.
    source = serializers.CharField(
        required=False,
        max_length=100,
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"Attribution source (utm_source). Absent or empty: every source; "
        f"{DIRECT!r}: direct traffic only (no utm_source).",
    )


class TakeRateQuery(MetricQuery):
    by = serializers.ChoiceField(choices=["offer", "source"], required=False, default="offer")


class RefundRateQuery(MetricQuery):
    by = serializers.ChoiceField(
        choices=["offer", "kind"],
        required=False,
        default="offer",
        help_text="Rows per line kind and offer, or per line kind.",
    )


def _rate(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=7, decimal_places=4, allow_null=True, **kwargs)


class FunnelStepOut(serializers.Serializer):
    step = serializers.ChoiceField(choices=FUNNEL_STEPS)
    events = serializers.IntegerField()
    visitors = serializers.IntegerField()


class TrafficOut(serializers.Serializer):
    sessions = serializers.IntegerField(
        help_text="Distinct visitor × UTC day with a page view or checkout start in the range."
    )
    visitors = serializers.IntegerField(help_text="Distinct visitors in the range.")


class OrderValueOut(serializers.Serializer):
    currency = serializers.CharField()
    orders = serializers.IntegerField(help_text="Orders paid in the range.")
    sessions = serializers.IntegerField(
        help_text="Distinct visitor × UTC day with a page view or checkout start in the range."
    )
    visitors = serializers.IntegerField(help_text="Distinct visitors in the range.")
    gross = serializers.IntegerField(help_text="Minor units.")
    net = serializers.IntegerField(help_text="Minor units, after refunds and chargebacks.")
    aov = serializers.IntegerField(allow_null=True)
    net_aov = serializers.IntegerField(allow_null=True)
    revenue_per_session = serializers.IntegerField(allow_null=True)
    net_revenue_per_session = serializers.IntegerField(allow_null=True)
    revenue_per_visitor = serializers.IntegerField(allow_null=True)
    net_revenue_per_visitor = serializers.IntegerField(allow_null=True)


class TakeRateOut(serializers.Serializer):
    offer = serializers.IntegerField(required=False, allow_null=True, help_text="With by=offer.")
    source = serializers.CharField(required=False, help_text="With by=source.")
    offered = serializers.IntegerField(help_text="Paid orders the offer was shown on.")
    accepted = serializers.IntegerField(help_text="Of those, ticked or clicked (paid or not).")
    taken = serializers.IntegerField(help_text="Of those, with a charged line of the offer.")
    rate = _rate(help_text="taken ÷ offered.")


class RefundRateOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["core", "bump", "upsell", "downsell", "cross_sell"])
    offer_id = serializers.IntegerField(
        required=False, allow_null=True, help_text="With by=offer; null for core lines."
    )
    sold = serializers.IntegerField(help_text="Lines with a charge.")
    refunded_lines = serializers.IntegerField(help_text="Refunded in full.")
    partially_refunded_lines = serializers.IntegerField()
    chargebacks = serializers.IntegerField()
    charged_amount = serializers.IntegerField()
    refunded_amount = serializers.IntegerField()
    charged_back_amount = serializers.IntegerField()
    refund_rate = _rate(help_text="Lines refunded in full ÷ lines sold.")
    partial_refund_rate = _rate(help_text="Lines refunded in part ÷ lines sold.")
    refund_rate_amount = _rate(help_text="Refunded amount ÷ charged amount.")
    chargeback_rate = _rate()


class CohortOut(serializers.Serializer):
    cohort = serializers.DateField(help_text="Month of the buyers' first paid order.")
    taker = serializers.BooleanField(help_text="Took an offer on that first order.")
    buyers = serializers.IntegerField()
    ltv30 = serializers.IntegerField(allow_null=True)
    matured30 = serializers.IntegerField()
    ltv60 = serializers.IntegerField(allow_null=True)
    matured60 = serializers.IntegerField()
    ltv90 = serializers.IntegerField(allow_null=True)
    matured90 = serializers.IntegerField()
    repeat_buyers = serializers.IntegerField()
    repeat_rate = _rate()


class TimeToChargeOut(serializers.Serializer):
    charges = serializers.IntegerField()
    p50_seconds = serializers.FloatField(allow_null=True)
    p95_seconds = serializers.FloatField(allow_null=True)


class ReliabilityOut(serializers.Serializer):
    event = serializers.CharField()
    reason = serializers.CharField()
    events = serializers.IntegerField()


class MrrMonthOut(serializers.Serializer):
    month = serializers.DateField(help_text="First day of the month (UTC).")
    currency = serializers.CharField()
    mrr_start = serializers.IntegerField(help_text="Minor units, before tax, at the start.")
    new = serializers.IntegerField()
    expansion = serializers.IntegerField()
    reactivation = serializers.IntegerField()
    contraction = serializers.IntegerField()
    churned = serializers.IntegerField()
    mrr_end = serializers.IntegerField(
        help_text="At the month's end (now, for this month): mrr_start + new + expansion + "
        "reactivation − contraction − churned."
    )
    customers_start = serializers.IntegerField()
    new_customers = serializers.IntegerField()
    reactivated_customers = serializers.IntegerField()
    churned_customers = serializers.IntegerField()
    customers_end = serializers.IntegerField()
    logo_churn_rate = _rate(help_text="churned_customers ÷ customers_start.")
    revenue_churn_rate = _rate(help_text="(churned + contraction) ÷ mrr_start.")
    net_revenue_churn_rate = _rate(
        help_text="(churned + contraction − expansion − reactivation) ÷ mrr_start."
    )


class TrialCohortOut(serializers.Serializer):
    cohort = serializers.DateField(help_text="Month the trials started.")
    trials = serializers.IntegerField()
    converted = serializers.IntegerField(help_text="The first period after the trial paid.")
    pending = serializers.IntegerField(help_text="Still in trial, being collected or paused.")
    lost = serializers.IntegerField(help_text="Cancelled or unpaid before paying.")
    conversion_rate = _rate(help_text="converted ÷ (converted + lost).")


class PlanCohortOut(serializers.Serializer):
    cohort = serializers.DateField(help_text="Month the payment plans started.")
    currency = serializers.CharField()
    plans = serializers.IntegerField()
    completed = serializers.IntegerField(help_text="Every instalment paid.")
    defaulted = serializers.IntegerField(help_text="Dunning gave up on an instalment.")
    cancelled = serializers.IntegerField(help_text="Ended otherwise before the last one.")
    in_progress = serializers.IntegerField()
    completion_rate = _rate(help_text="completed ÷ (completed + defaulted + cancelled).")
    default_rate = _rate(help_text="defaulted ÷ (completed + defaulted + cancelled).")
    scheduled = serializers.IntegerField(help_text="instalments × amount, minor units.")
    collected = serializers.IntegerField(help_text="Instalments paid, before refunds.")


class RenewalMonthOut(serializers.Serializer):
    month = serializers.DateField(help_text="Month of the ledger entries (UTC).")
    currency = serializers.CharField()
    charged = serializers.IntegerField(help_text="Renewals and instalments charged, minor units.")
    refunded = serializers.IntegerField()
    charged_back = serializers.IntegerField()
    net = serializers.IntegerField(help_text="charged − refunded − charged_back.")


class SubscriptionMetricsOut(serializers.Serializer):
    mrr = MrrMonthOut(many=True)
    trials = TrialCohortOut(many=True)
    payment_plans = PlanCohortOut(many=True)
    renewal_revenue = RenewalMonthOut(many=True)


def _metric(query: type[serializers.Serializer], out: serializers.Serializer, about: str):
    return extend_schema(parameters=[query], responses=out, filters=False, description=about)


class MetricViewSet(viewsets.GenericViewSet):
    """Read-only metrics; each answer is computed by one analytics selector."""

    filter_backends: list = []
    pagination_class = None
    serializer_class = MetricQuery

    def initial(self, request, *args, **kwargs):
        # The key, its scope and its rate limit first, once, on the primary; then the action
        # inside `replica_reads()` (on a configured replica when it is fresh), run again on
        # the primary if the replica fails under it (core/replica.py `replica_reads_call`;
        # the action's `rollups_refresh()` may then run twice, which it is made for).
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        handler = getattr(self, method, None)
        if handler is not None:
            setattr(self, method, functools.partial(replica.replica_reads_call, handler))

    def _filter(self, query: type[MetricQuery] = MetricQuery) -> tuple[MetricFilter, dict]:
        params = query(data=query_params_once(self.request, query().fields))
        params.is_valid(raise_exception=True)
        data = params.validated_data
        rollups_refresh()  # fresh figures: what was committed before the request is counted
        replica.replan()  # reads on a replica wait for the refresh (core/replica.py)
        return MetricFilter(
            start=data.get("start"),
            end=data.get("end"),
            offer_id=data.get("offer_id"),
            product_id=data.get("product_id"),
            source=source_param(data.get("source")),
        ), data

    @_metric(MetricQuery, FunnelStepOut(many=True), "Events and distinct visitors per step.")
    @action(detail=False, methods=["get"])
    def funnel(self, request):
        return Response(FunnelStepOut(selectors.funnel(self._filter()[0]), many=True).data)

    @_metric(MetricQuery, TrafficOut, "Sessions and visitors.")
    @action(detail=False, methods=["get"])
    def traffic(self, request):
        return Response(TrafficOut(selectors.traffic(self._filter()[0])).data)

    @_metric(
        MetricQuery,
        OrderValueOut(many=True),
        "Per currency: paid orders, gross and net revenue, AOV, revenue per session and "
        "per visitor.",
    )
    @action(detail=False, methods=["get"], url_path="order-value")
    def order_value(self, request):
        rows = selectors.order_value(self._filter()[0])
        return Response(OrderValueOut(rows, many=True).data)

    @_metric(
        TakeRateQuery, TakeRateOut(many=True), "Taken (a paid line) ÷ offered, per offer or source."
    )
    @action(detail=False, methods=["get"], url_path="take-rates")
    def take_rates(self, request):
        f, data = self._filter(TakeRateQuery)
        return Response(TakeRateOut(selectors.take_rates(f, by=data["by"]), many=True).data)

    @_metric(
        RefundRateQuery,
        RefundRateOut(many=True),
        "Refund and chargeback rates per line kind and offer, by lines and by amount.",
    )
    @action(detail=False, methods=["get"], url_path="refund-rates")
    def refund_rates(self, request):
        f, data = self._filter(RefundRateQuery)
        rows = selectors.refund_rates(f, by=data["by"])
        return Response(RefundRateOut(rows, many=True).data)

    @_metric(
        MetricQuery,
        CohortOut(many=True),
        "Net LTV at 30/60/90 days by first-purchase month, takers vs non-takers.",
    )
    @action(detail=False, methods=["get"], url_path="cohort-ltv")
    def cohort_ltv(self, request):
        return Response(CohortOut(selectors.cohort_ltv(self._filter()[0]), many=True).data)

    @_metric(
        MetricQuery,
        SubscriptionMetricsOut,
        "Subscriptions: MRR and its movements per month and currency (months in the range; "
        "product_id filters; offer_id and source do not apply), logo and revenue churn, trial "
        "conversion and payment-plan completion by month started, and what renewals and "
        "instalments collected per month, net of refunds and chargebacks.",
    )
    @action(detail=False, methods=["get"])
    def subscriptions(self, request):
        f = self._filter()[0]
        return Response(
            SubscriptionMetricsOut(
                {
                    "mrr": selectors.mrr_movements(f),
                    "trials": selectors.trial_conversion(f),
                    "payment_plans": selectors.plan_completion(f),
                    "renewal_revenue": selectors.renewal_revenue(f),
                }
            ).data
        )

    @_metric(MetricQuery, TimeToChargeOut, "Seconds from upsell accept to charge: p50, p95.")
    @action(detail=False, methods=["get"], url_path="time-to-charge")
    def time_to_charge(self, request):
        return Response(TimeToChargeOut(selectors.time_to_charge(self._filter()[0])).data)

    @_metric(
        MetricQuery,
        ReliabilityOut(many=True),
        "Idempotency conflicts and upsell failures, by reason.",
    )
    @action(detail=False, methods=["get"])
    def reliability(self, request):
        return Response(ReliabilityOut(selectors.reliability(self._filter()[0]), many=True).data)
