"""The rest of the creator's admin: offer guardrails in the form, experiments that show their
sample size before starting, reconciliation findings, read-only money rows, the dashboard link."""

from __future__ import annotations

from django.test import Client

from analytics.experiments import experiment_planned_sample
from analytics.models import Experiment, ExperimentStatus
from audit.models import AuditEntry
from core.models import OutboxMessage
from offers.models import Offer
from payments.models import Mismatch, Refund
from tests.admin.conftest import audited, messages_of
from tests.admin.test_audit_actions import _offer_form
from tests.factories import OfferFactory, ProductFactory

# --- offers: guardrails ----------------------------------------------------------------------


def test_an_offer_above_half_the_cart_is_refused_in_the_admin_without_the_override(
    owner_client,
):
    core, addon = ProductFactory(price_amount=4000), ProductFactory(price_amount=9000)
    form = _offer_form(trigger_product=core.pk, product=addon.pk, price_amount=2400)  # 60%
    refused = owner_client.post("/admin/offers/offer/add/", form)
    assert refused.status_code == 200
    assert "above the 50% limit" in refused.content.decode()
    assert not Offer.objects.exists() and not AuditEntry.objects.exists()

    allowed = owner_client.post(
        "/admin/offers/offer/add/", {**form, "allow_high_price": "on"}, follow=True
    )
    assert allowed.status_code == 200
    offer = Offer.objects.get()
    assert offer.allow_high_price and offer.price_amount == 2400
    # Allowed, but still outside the 10–30% sweet spot: the creator is told.
    assert any("60.0% of the core price" in m for m in messages_of(allowed)), messages_of(allowed)
    assert audited("offers.offer.add", object_id=offer.pk).changes["allow_high_price"] == [
        None,
        True,
    ]


def test_an_offer_priced_outside_the_sweet_spot_is_saved_with_a_warning(owner_client):
    core, addon = ProductFactory(price_amount=10000), ProductFactory(price_amount=9000)
    saved = owner_client.post(
        "/admin/offers/offer/add/",
        _offer_form(trigger_product=core.pk, product=addon.pk, price_amount=4000),
        follow=True,
    )
    assert any("convert best" in m for m in messages_of(saved))
    offer = Offer.objects.get()
    page = owner_client.get(f"/admin/offers/offer/{offer.pk}/change/").content.decode()
    assert "40.0% of the core price" in page


def test_the_offer_form_cannot_pause_without_the_pause_action(owner_client):
    offer = OfferFactory()
    response = owner_client.post(
        f"/admin/offers/offer/{offer.pk}/change/",
        {**_offer_form(offer), "status": "paused", "paused_reason": "sneaky"},
    )
    assert response.status_code == 302
    offer.refresh_from_db()
    assert (offer.status, offer.paused_reason) == ("active", "")


def test_a_second_active_bump_for_a_product_is_a_form_error_not_a_crash(owner_client):
    first = OfferFactory()
    response = owner_client.post(
        "/admin/offers/offer/add/",
        _offer_form(
            trigger_product=first.trigger_product_id, product=first.product_id, price_amount=900
        ),
    )
    assert response.status_code == 200
    assert Offer.objects.count() == 1


def test_the_offer_decisions_are_listed_read_only(owner_client):
    assert owner_client.get("/admin/offers/offerdecision/").status_code == 200
    assert owner_client.get("/admin/offers/offerdecision/add/").status_code == 403


# --- experiments -----------------------------------------------------------------------------


def _experiment_form(offer: Offer, **overrides) -> dict:
    data = {
        "name": "Headline test",
        "offer_id": offer.pk,
        "kind": "creative",
        "variants": '{"a": {"headline": "Complete your kit"}, "b": {"headline": "Add it"}}',
        "baseline_rate": "0.1000",
        "min_detectable_effect": "0.0200",
        "alpha": "0.050",
        "power": "0.800",
    }
    data.update(overrides)
    return data


def test_an_experiment_shows_its_sample_size_per_arm_before_it_is_started(owner_client):
    offer = OfferFactory()
    saved = owner_client.post(
        "/admin/analytics/experiment/add/", _experiment_form(offer), follow=True
    )
    experiment = Experiment.objects.get()
    per_arm = experiment_planned_sample(experiment)
    assert per_arm == 3841  # 10% → 12% take rate, α 0.05, power 0.8 (Fleiss, by hand)
    assert any(f"{per_arm:,} visitors per arm" in m for m in messages_of(saved))
    change = owner_client.get(f"/admin/analytics/experiment/{experiment.pk}/change/")
    assert f"{per_arm:,} visitors per arm ({2 * per_arm:,} in total" in change.content.decode()

    confirm = owner_client.post(
        "/admin/analytics/experiment/",
        {"action": "start", "_selected_action": [experiment.pk], "index": 0},
    )
    assert confirm.status_code == 200 and f"{per_arm:,} visitors per arm" in (
        confirm.content.decode()
    )
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT  # not started by the confirmation page

    started = owner_client.post(
        "/admin/analytics/experiment/",
        {"action": "start", "_selected_action": [experiment.pk], "index": 0, "apply": "Start"},
    )
    assert started.status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert audited("analytics.experiment.start", object_id=experiment.pk).changes["status"] == [
        "draft",
        "running",
    ]

    stopped = owner_client.post(
        "/admin/analytics/experiment/",
        {"action": "stop", "_selected_action": [experiment.pk], "index": 0},
    )
    assert stopped.status_code == 302
    assert audited("analytics.experiment.stop", object_id=experiment.pk).changes["status"] == [
        "running",
        "stopped",
    ]


def test_an_experiment_mixing_creative_and_structural_changes_is_refused_in_the_form(
    owner_client,
):
    offer = OfferFactory()
    response = owner_client.post(
        "/admin/analytics/experiment/add/",
        _experiment_form(offer, variants='{"a": {"headline": "X"}, "b": {"price_amount": 500}}'),
    )
    assert response.status_code == 200
    assert "test one thing at a time" in response.content.decode()
    assert not Experiment.objects.exists()


def test_planning_inputs_without_a_sample_size_are_refused_in_the_form(owner_client):
    offer = OfferFactory()
    response = owner_client.post(
        "/admin/analytics/experiment/add/",
        _experiment_form(offer, baseline_rate="0.9900", min_detectable_effect="0.0000"),
    )
    assert response.status_code == 200
    assert "no sample size answers" in response.content.decode()
    assert not Experiment.objects.exists()


def test_a_second_running_experiment_on_one_offer_is_refused_with_a_message(owner_client):
    offer = OfferFactory()
    variants = {"a": {"headline": "X"}, "b": {"headline": "Y"}}
    Experiment.objects.create(
        offer_id=offer.pk,
        name="first",
        kind="creative",
        variants=variants,
        status=ExperimentStatus.RUNNING,
    )
    second = Experiment.objects.create(
        offer_id=offer.pk, name="second", kind="creative", variants=variants
    )
    response = owner_client.post(
        "/admin/analytics/experiment/",
        {"action": "start", "_selected_action": [second.pk], "index": 0, "apply": "Start"},
        follow=True,
    )
    assert any("already running" in m for m in messages_of(response))
    second.refresh_from_db()
    assert second.status == ExperimentStatus.DRAFT


# --- reconciliation and money rows -----------------------------------------------------------


def test_marking_a_finding_resolved_is_audited_and_keeps_the_first_resolution(owner_client):
    finding = Mismatch.objects.create(
        kind="orphan_charge", gateway_ref="pi_orphan", detail="no attempt"
    )
    response = owner_client.post(
        "/admin/payments/mismatch/",
        {"action": "mark_resolved", "_selected_action": [finding.pk], "index": 0},
    )
    assert response.status_code == 302
    finding.refresh_from_db()
    first = finding.resolved_at
    assert first is not None
    entry = audited("payments.mismatch.action.mark_resolved", object_id=finding.pk)
    assert entry.changes["resolved_at"][0] is None
    owner_client.post(
        "/admin/payments/mismatch/",
        {"action": "mark_resolved", "_selected_action": [finding.pk], "index": 0},
    )
    finding.refresh_from_db()
    assert finding.resolved_at == first


def test_reconcile_now_queues_one_run_of_this_store_and_is_audited(owner_client, tenant):
    page = owner_client.get("/admin/payments/mismatch/")
    assert b"Reconcile now" in page.content
    assert owner_client.get("/admin/payments/mismatch/reconcile/").status_code == 405
    response = owner_client.post("/admin/payments/mismatch/reconcile/")
    assert response.status_code == 302
    queued = OutboxMessage.objects.filter(task_name="payments.reconcile")
    assert [(m.schema_name, m.kwargs) for m in queued] == [(tenant.schema_name, {})]
    audited("payments.reconcile.request")


def test_refunds_gateway_events_and_findings_are_read_only(owner_client):
    finding = Mismatch.objects.create(kind="amount", gateway_ref="pi_1", detail="differs")
    refund = Refund.objects.create(
        idempotency_key="k1",
        reference="order:1",
        line_key="line:1",
        payment_ref="pi_1",
        amount=100,
        currency="USD",
    )
    for url in [
        "/admin/payments/refund/add/",
        "/admin/payments/webhookevent/add/",
        "/admin/payments/mismatch/add/",
    ]:
        assert owner_client.get(url).status_code == 403, url
    for url in [
        f"/admin/payments/refund/{refund.pk}/change/",
        f"/admin/payments/mismatch/{finding.pk}/change/",
    ]:
        assert owner_client.post(url, {}).status_code == 403, url
    assert (
        owner_client.post(
            f"/admin/payments/refund/{refund.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )


def test_the_charge_attempt_page_never_shows_the_client_secret(owner_client):
    from payments.models import ChargeAttempt

    attempt = ChargeAttempt.objects.create(
        purpose="order:1:primary",
        idempotency_key="idem-1",
        reference="order:1",
        amount=100,
        currency="USD",
        customer_ref="cus_1",
        payment_method_ref="pm_1",
        client_secret="pi_1_secret_abcdef",
    )
    page = owner_client.get(f"/admin/payments/chargeattempt/{attempt.pk}/change/")
    assert page.status_code == 200 and b"pi_1_secret_abcdef" not in page.content


def test_follow_up_emails_are_listed_read_only_with_filters(owner_client):
    page = owner_client.get("/admin/storefront/followupsend/")
    assert page.status_code == 200
    assert {f.title for f in page.context["cl"].filter_specs} >= {"status", "step"}
    assert owner_client.get("/admin/storefront/followupsend/add/").status_code == 403


# --- the admin index -------------------------------------------------------------------------


def test_the_admin_index_links_to_the_analytics_dashboard_for_staff(owner_client):
    index = owner_client.get("/admin/")
    assert index.status_code == 200
    assert 'href="/admin/analytics/dashboard/"' in index.content.decode()
    assert owner_client.get("/admin/analytics/dashboard/").status_code == 200


def test_a_logged_in_buyer_who_is_not_staff_gets_neither_the_admin_nor_the_dashboard(tenant):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("fan", "fan@t1.example", "fan-pass-123")
    client = Client(HTTP_HOST="t1.localhost")
    assert client.login(username="fan", password="fan-pass-123")
    for url in ["/admin/", "/admin/analytics/dashboard/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
