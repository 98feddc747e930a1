"""Partner API: experiments on an offer: create (draft), see the sample size each arm needs,
start, stop, and read the always-valid (mSPRT) results.

Experiments live in analytics (the read side measures them); starting and stopping are offers'
rules (offers.experiments), so these views sit here, above both.
"""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from analytics.experiments import experiment_planned_sample, experiment_report
from analytics.models import (
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    experiment_variants_problems,
)
from api.auth import actor_of
from api.errors import ApiError
from api.filters import IdFilter
from api.reads import ReplicaReads
from offers.api import services
from offers.experiments import experiment_start, experiment_stop
from offers.models import Offer

# What an arm may set (analytics.models.EXPERIMENT_FIELDS), and how each value is checked:
# the storefront applies them as they are.
_ARM_VALUES = {
    "headline": serializers.CharField(max_length=200),
    "benefit": serializers.CharField(max_length=300),
    "testimonial": serializers.CharField(max_length=2000),
    "framing": serializers.CharField(max_length=300),
    "placement": serializers.CharField(max_length=40),
    "price_amount": serializers.IntegerField(min_value=1, max_value=2**31 - 1),
}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": True,
            "description": 'The fields this arm changes, e.g. {"headline": "…"}',
        },
    }
)
class VariantsField(serializers.JSONField):
    pass


class SampleSizeOut(serializers.Serializer):
    per_arm = serializers.IntegerField(
        help_text="Visitors each arm needs before the test can "
        "detect the minimum effect at this power."
    )
    arms = serializers.IntegerField()
    total = serializers.IntegerField()


class ExperimentOut(serializers.ModelSerializer):
    variants = VariantsField()
    arms = serializers.ListField(child=serializers.CharField(), read_only=True)
    sample_size = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "id",
            "offer_id",
            "name",
            "kind",
            "variants",
            "control_no_offer",
            "arms",
            "status",
            "baseline_rate",
            "min_detectable_effect",
            "alpha",
            "power",
            "sample_size",
            "created_at",
            "started_at",
            "stopped_at",
        ]

    @extend_schema_field(SampleSizeOut(allow_null=True))
    def get_sample_size(self, obj: Experiment) -> dict | None:
        per_arm = _planned(obj)
        if per_arm is None:
            return None
        return {"per_arm": per_arm, "arms": len(obj.arms), "total": per_arm * len(obj.arms)}


def _planned(experiment: Experiment) -> int | None:
    """None when the planning inputs cannot give a sample size (e.g. a zero effect set in
    the admin): the API says so instead of failing."""
    try:
        return experiment_planned_sample(experiment)
    except ValueError:
        return None


def _unplannable() -> ApiError:
    return ApiError(
        "experiment_unplannable",
        "This experiment's baseline, effect, alpha or "
        "power cannot give a sample size; fix them in the admin.",
        status_code=409,
    )


class ExperimentIn(serializers.ModelSerializer):
    offer_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=ExperimentKind.choices)
    variants = VariantsField()
    control_no_offer = serializers.BooleanField(default=False)
    baseline_rate = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal("0.9998"),
        required=False,
        help_text="Today's take rate as a proportion (0.10 = 10 %).",
    )
    min_detectable_effect = serializers.DecimalField(
        max_digits=5,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal("0.9998"),
        required=False,
        help_text="Absolute change in take rate worth detecting (0.02 = 2 points).",
    )
    alpha = serializers.DecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=Decimal("0.001"),
        max_value=Decimal("0.499"),
        required=False,
    )
    power = serializers.DecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=Decimal("0.500"),
        max_value=Decimal("0.999"),
        required=False,
    )

    class Meta:
        model = Experiment
        fields = [
            "offer_id",
            "name",
            "kind",
            "variants",
            "control_no_offer",
            "baseline_rate",
            "min_detectable_effect",
            "alpha",
            "power",
        ]

    def validate_offer_id(self, value: int) -> int:
        if not Offer.objects.filter(pk=value).exists():
            raise serializers.ValidationError("No such offer in this store.")
        return value

    def validate(self, attrs):
        problems = experiment_variants_problems(
            kind=attrs["kind"],
            variants=attrs["variants"],
            control_no_offer=attrs["control_no_offer"],
        )
        if not problems:
            for arm, fields in attrs["variants"].items():
                for name, value in fields.items():
                    try:
                        _ARM_VALUES[name].run_validation(value)
                    except serializers.ValidationError as exc:
                        problems += [f"arm {arm!r}, {name}: {m}" for m in exc.detail]
        if problems:
            raise serializers.ValidationError({"variants": problems})
        baseline = attrs.get("baseline_rate", Decimal("0.1"))
        effect = attrs.get("min_detectable_effect", Decimal("0.02"))
        if baseline + effect >= 1:
            raise serializers.ValidationError(
                {
                    "min_detectable_effect": [
                        "baseline_rate + min_detectable_effect must stay below 1."
                    ]
                }
            )
        return attrs


class ArmOut(serializers.Serializer):
    arm = serializers.CharField()
    visitors = serializers.IntegerField()
    takers = serializers.IntegerField()
    buyers = serializers.IntegerField()
    gross = serializers.IntegerField(help_text="Minor units.")
    net = serializers.IntegerField(help_text="Minor units, after refunds and chargebacks.")
    take_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    conversion = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    revenue_per_visitor = serializers.IntegerField(allow_null=True)
    refund_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    repeat_rate = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)


class SequentialOut(serializers.Serializer):
    difference = serializers.FloatField(help_text="Rate of arm_b − rate of arm_a.")
    lower = serializers.FloatField(help_text="Always-valid confidence sequence, lower bound.")
    upper = serializers.FloatField()
    p_value = serializers.FloatField(help_text="Always-valid p-value: valid at every look.")
    decided = serializers.BooleanField()


class ResultsOut(serializers.Serializer):
    experiment = ExperimentOut()
    metric = serializers.CharField()
    arm_a = serializers.CharField()
    arm_b = serializers.CharField()
    arms = ArmOut(many=True)
    sequential = SequentialOut(source="result")
    verdict = serializers.CharField(help_text="winner: <arm>, underpowered or undecided.")
    notes = serializers.ListField(child=serializers.CharField())


class ExperimentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ExperimentStatus.choices)
    offer_id = IdFilter()

    class Meta:
        model = Experiment
        fields = ["status", "offer_id"]


class ExperimentViewSet(
    ReplicaReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Experiments against an offer. Each shows `sample_size`: the visitors per arm the test
    needs, from its baseline, minimum detectable effect, alpha and power, before it starts."""

    filterset_class = ExperimentFilter
    search_fields = ["name"]
    ordering_fields = ["created_at", "id"]
    ordering = ["-id"]

    def get_queryset(self):
        return Experiment.objects.order_by("-pk")

    def get_serializer_class(self):
        return ExperimentIn if self.action == "create" else ExperimentOut

    @extend_schema(request=ExperimentIn, responses={201: ExperimentOut})
    def create(self, request, *args, **kwargs):
        data = ExperimentIn(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = services.experiment_create(actor=actor_of(request), data=data.validated_data)
        return Response(ExperimentOut(experiment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses=ExperimentOut,
        description="Draft → running. One running experiment per offer (409).",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def start(self, request, pk=None):
        experiment = self.get_object()
        planned = _planned(experiment)
        if planned is None:
            raise _unplannable()
        try:
            started = experiment_start(
                actor=actor_of(request), experiment=experiment, planned_per_arm=planned
            )
        except IntegrityError as exc:
            raise ApiError(
                "experiment_conflict",
                "Another experiment is running on this offer; stop it first.",
                status_code=409,
            ) from exc
        except DjangoValidationError as exc:
            raise ApiError("experiment_invalid", "; ".join(exc.messages), status_code=409) from exc
        if not started:
            raise ApiError(
                "experiment_not_draft", "Only a draft experiment can start.", status_code=409
            )
        experiment.refresh_from_db()
        return Response(ExperimentOut(experiment).data)

    @extend_schema(request=None, responses=ExperimentOut)
    @action(detail=True, methods=["post"], filter_backends=[])
    def stop(self, request, pk=None):
        experiment = self.get_object()
        if not experiment_stop(actor=actor_of(request), experiment=experiment):
            raise ApiError(
                "experiment_not_running", "Only a running experiment can stop.", status_code=409
            )
        experiment.refresh_from_db()
        return Response(ExperimentOut(experiment).data)

    @extend_schema(
        responses=ResultsOut,
        filters=False,
        description="Per-arm figures and the mixture sequential test (mSPRT): "
        "valid however often you look.",
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def results(self, request, pk=None):
        experiment = self.get_object()
        if _planned(experiment) is None:
            raise _unplannable()
        return Response(ResultsOut(experiment_report(experiment)).data)
