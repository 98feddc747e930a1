"""Checkout: quote, start (order + card setup), pay (one charge for core + bump), confirm."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import connection, transaction

from analytics.models import EventName
from analytics.services import event_append, events_append
from core import orderkeys
from core.identity import email_key
from core.money import Money
from core.returning import insert_returning, update_then_select
from offers.coupons import CouponRefused, coupon_find, coupon_from_data, coupon_redeem
from offers.experiments import OfferPresentation, buyer_key, offer_for_buyer
from offers.models import Coupon, Offer
from offers.selectors import bump_for_product
from payments import services as payments
from payments.gateway import GatewayRejected, GatewayUnavailable, SetupResult
from payments.models import ChargeAttempt
from storefront import selectors
from storefront.countries import COUNTRIES
from storefront.models import (
    Customer,
    LineKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    StoreSettings,
)
from storefront.pricing import Jurisdiction, Quote, bump_within_guardrail, quote_checkout
from storefront.services import coupon_holds
from storefront.services.errors import CheckoutError
from storefront.services.free_trial import refuse_zero_total, trial_start, trial_still_offered
from storefront.services.orders import event_fields_for, order_status_move
from storefront.tax.evidence import evidence_conflict, ip_country

CONSENT_TEXT = (
    "Save my card with the payment provider so I can add offers with one click. "
    "The store never sees the card number."
)
TRIAL_CONSENT_TEXT = (
    "Save my card with the payment provider to pay the subscription when the free trial "
    "ends and each period after that, until I cancel."
)
REMINDER_TEXT = (
    "If I don't finish, send me up to two reminders with a link back to this checkout. "
    "Each has a one-click unsubscribe link."
)


def _refuse_if_not_accepting() -> None:
    """Before any gateway call: a store that cannot take payments yet says so (payments.connect)."""
    from payments.connect import payments_block_reason

    reason = payments_block_reason()
    if reason:
        raise CheckoutError("store", reason)


@dataclass(frozen=True)
class Attribution:
    visitor_id: str = ""
    source: str = ""
    medium: str = ""
    campaign: str = ""
    referrer: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, str] | None) -> Attribution:
        data = data or {}
        return cls(
            **{
                k: str(data.get(k, ""))[: 100 if k != "referrer" else 500]
                for k in ("visitor_id", "source", "medium", "campaign", "referrer")
            }
        )


def jurisdiction_parse(*, country: str, region: str = "") -> Jurisdiction:
    country = (country or "").strip().upper()
    if country not in COUNTRIES:
        raise CheckoutError("country", "Choose the country you live in.")
    region = (region or "").strip().upper()
    if region and not (region.isalnum() and len(region) <= 10):
        raise CheckoutError("region", "Enter a valid state or region code (for example CA).")
    return Jurisdiction(country, region)


@dataclass(frozen=True)
class BusinessBuyer:
    """A VAT ID as checked: reverse charge only when VIES confirmed it and the buyer is in
    another EU country than the store; VIES down means a consumer sale, recorded as such."""

    vat_id: str = ""
    status: str = ""  # "valid", "vies_unavailable"
    consultation: str = ""
    reverse_charge: bool = False

    def evidence(self) -> dict[str, str]:
        if not self.vat_id:
            return {}
        return {
            "vat_id": self.vat_id,
            "vat_id_status": self.status,
            "vies_consultation": self.consultation,
            "reverse_charge": "yes" if self.reverse_charge else "no",
        }


def business_buyer_check(*, vat_id: str, country: str) -> BusinessBuyer:
    """Check a VAT ID given at checkout (format and check digit, then VIES). Raises
    CheckoutError for a malformed number or one VIES says is not registered."""
    from storefront.models import StoreSettings
    from storefront.tax import vat

    if not (vat_id or "").strip():
        return BusinessBuyer()
    try:
        parsed = vat.vat_id_parse(vat_id, country=country)
    except vat.VatIdInvalid as exc:
        raise CheckoutError("vat_id", str(exc)) from exc
    try:
        answer = vat.vies_client().check(parsed)
    except vat.ViesUnavailable:
        return BusinessBuyer(vat_id=str(parsed), status="vies_unavailable")
    if not answer.valid:
        raise CheckoutError(
            "vat_id",
            f"{parsed} is not registered for VAT in the EU (VIES). Check it, or leave the "
            "field empty to buy as a consumer.",
        )
    seller = StoreSettings.current().tax_country
    return BusinessBuyer(
        vat_id=str(parsed),
        status="valid",
        consultation=answer.consultation,
        reverse_charge=country != seller,
    )


def bump_shown(*, product: Product, visitor_key: str) -> OfferPresentation:
    """The bump this buyer sees: under a running experiment, their arm's version of it, or
    none at all in the no-offer control."""
    return offer_for_buyer(offer=bump_for_product(product_id=product.pk), visitor_key=visitor_key)


def checkout_quote(
    *,
    product_slug: str,
    bump_offer_id: int | None,
    country: str,
    region: str = "",
    visitor_key: str = "",
    coupon_code: str = "",
) -> tuple[Product, Offer | None, Quote]:
    """Validate what the buyer asked for and price it. Writes nothing but the buyer's
    experiment assignment (sticky, once)."""
    product, _, bump, quote = _quote(
        product_slug=product_slug,
        bump_offer_id=bump_offer_id,
        country=country,
        region=region,
        visitor_key=visitor_key,
        coupon_code=coupon_code,
    )
    return product, bump, quote


def coupon_for_checkout(
    *, code: str, redeeming: bool = False, product: Product | None = None
) -> Coupon | None:
    """The coupon for a code the buyer typed or followed a link with (None for no code);
    CheckoutError on the coupon field when it cannot be used. A `product` read by
    selectors.product_get_active with this code carries the coupon already."""
    if not (code or "").strip():
        return None
    found = {}
    if product is not None and hasattr(product, "coupon_data"):
        found["loaded"] = coupon_from_data(product.coupon_data)
    try:
        return coupon_find(code=code, redeeming=redeeming, **found)
    except CouponRefused as exc:
        raise CheckoutError("coupon", exc.message) from exc


def _quote(
    *,
    product_slug: str,
    bump_offer_id: int | None,
    country: str,
    region: str,
    visitor_key: str,
    reverse_charge: bool = False,
    coupon_code: str = "",
    redeeming: bool = False,
    store: StoreSettings | None = None,
) -> tuple[Product, OfferPresentation, Offer | None, Quote]:
    product = selectors.product_get_active(slug=product_slug, coupon_code=coupon_code)
    if product is None:
        raise CheckoutError("product", "This product is not available.")
    coupon = coupon_for_checkout(code=coupon_code, redeeming=redeeming, product=product)
    shown = bump_shown(product=product, visitor_key=visitor_key)
    bump = None
    if bump_offer_id is not None:
        bump = shown.offer
        if bump is None or bump.pk != bump_offer_id:
            raise CheckoutError("bump", "That add-on is not available with this product.")
        if bump.currency != product.currency:
            raise CheckoutError("bump", "That add-on is priced in another currency.")
        if not bump_within_guardrail(product=product, bump=bump, coupon=coupon):
            raise CheckoutError("bump", "That add-on is not available with this coupon.")
    place = jurisdiction_parse(country=country, region=region)
    try:
        quote = quote_checkout(
            product=product,
            bump=bump,
            jurisdiction=Jurisdiction(place.country, place.region, reverse_charge),
            coupon=coupon,
            store=store,
        )
    except CouponRefused as exc:
        if coupon is not None:  # a free trial has nothing for it to take off: say that
            refuse_zero_total(
                quote_checkout(product=product, bump=bump, jurisdiction=place, store=store),
                coupon,
            )
        raise CheckoutError("coupon", exc.message) from exc
    if quote.total.amount == 0:
        refuse_zero_total(quote, coupon)
    return product, shown, bump, quote


@dataclass(frozen=True)
class StartedCheckout:
    order: Order
    setup_client_secret: str
    quote: Quote


def checkout_start(
    *,
    product_slug: str,
    bump_offer_id: int | None,
    email: str,
    country: str,
    region: str,
    save_card: bool,
    attribution: Attribution,
    expected_total: int | None,
    vat_id: str = "",
    client_ip: str | None = None,
    coupon_code: str = "",
    remind: bool = False,
    recovered_from_id: int | None = None,
) -> StartedCheckout:
    """Create the pending order and a card-setup intent. Nothing is charged here.

    With a coupon, its use is taken in the order's transaction (offers.coupons.coupon_redeem):
    past either limit the database refuses it and nothing of the order is written. With the
    buyer's consent (`remind`), the abandoned-checkout reminders are scheduled with it; paying
    stops them."""
    _refuse_if_not_accepting()
    email = email_key(email)
    place = jurisdiction_parse(country=country, region=region)
    business = business_buyer_check(vat_id=vat_id, country=place.country)
    store = StoreSettings.current()
    product, shown, bump, quote = _quote(
        product_slug=product_slug,
        bump_offer_id=bump_offer_id,
        country=country,
        region=region,
        visitor_key=buyer_key(visitor_id=attribution.visitor_id, email=email),
        reverse_charge=business.reverse_charge,
        coupon_code=coupon_code,
        redeeming=True,
        store=store,
    )
    evidence = {
        **quote.jurisdiction.evidence(source="buyer_declared_billing_country"),
        "declared_country": quote.jurisdiction.country,
        **business.evidence(),
    }
    if found := ip_country(client_ip):
        evidence["ip_country"] = found
    if expected_total is not None and expected_total != quote.total.amount:
        raise CheckoutError(
            "total", f"The total changed to {quote.total}. Please review it and pay again."
        )
    try:
        gateway_customer = payments.gateway_customer_get_or_create(email=email)
    except (GatewayUnavailable, GatewayRejected) as exc:
        raise CheckoutError(
            "card", "Payments are unavailable right now. Please try again."
        ) from exc

    offered_bump = shown.offer  # None in the no-offer control: never offered, never logged
    try:
        with transaction.atomic():
            order = _order_create(
                quote=quote,
                email=email,
                gateway_customer=gateway_customer,
                evidence=evidence,
                vat_id=business.vat_id,
                attribution=attribution,
                save_card=save_card,
                variant=shown.variant,
                remind=remind and store.recovery_enabled,
                recovered_from_id=recovered_from_id,
            )
            if remind and store.recovery_enabled:
                from storefront.services.followups.recovery import reminders_schedule

                reminders_schedule(order=order, product=product, store=store)
            fields = event_fields_for(order)
            coupon = {"properties": {"coupon": quote.coupon.code}} if quote.coupon else {}
            events = [
                (
                    EventName.CHECKOUT_INITIATED,
                    {"product_id": product.pk, "amount": quote.total.amount, **coupon, **fields},
                )
            ]
            if offered_bump is not None:
                offered = {"offer_id": offered_bump.pk, "product_id": offered_bump.product_id}
                events.append((EventName.BUMP_OFFERED, {**offered, **fields}))
            if bump is not None:
                bump_line = next(line for line in quote.lines if line.kind == LineKind.BUMP)
                # The bump's price as the buyer took it: less the coupon's share.
                taken = {"amount": bump.price_amount - bump_line.discount_amount}
                taken |= {"offer_id": bump.pk, "product_id": bump.product_id}
                events.append((EventName.BUMP_ACCEPTED, {**taken, **fields}))
            events_append(events)  # one INSERT for the three
    except CouponRefused as exc:
        raise CheckoutError("coupon", exc.message) from exc
    try:
        setup = payments.card_setup_create(
            customer=gateway_customer, idempotency_key=f"setup_{order.token}"
        )
    except (GatewayUnavailable, GatewayRejected) as exc:
        with transaction.atomic():
            order_status_move(order=order, to=OrderStatus.FAILED)
        raise CheckoutError(
            "card", "Payments are unavailable right now. Please try again."
        ) from exc
    Order.objects.filter(pk=order.pk).update(setup_ref=setup.setup_ref)
    order.setup_ref = setup.setup_ref
    return StartedCheckout(order, setup.client_secret, quote)


def _order_create(
    *,
    quote: Quote,
    email: str,
    gateway_customer,
    evidence: dict,
    vat_id: str,
    attribution: Attribution,
    save_card: bool,
    variant: str,
    remind: bool,
    recovered_from_id: int | None,
) -> Order:
    """The pending order, its lines and its coupon use: inside the caller's transaction."""
    # One statement for get-or-create and "point at this gateway customer": the buyer's row,
    # locked until the order commits (a concurrent checkout by the same address waits).
    customer = insert_returning(
        Customer(email=email, gateway_customer=gateway_customer),
        conflict='("email") DO UPDATE SET "gateway_customer_id" = EXCLUDED."gateway_customer_id"',
    )
    if quote.coupon is not None:
        coupon_holds.coupon_hold_supersede(customer=customer, coupon_id=quote.coupon.pk)
    if (
        recovered_from_id is not None
        and not Order.objects.filter(pk=recovered_from_id, customer=customer).exists()
    ):
        recovered_from_id = None  # a reminder is credited only for its own buyer
    order = Order.objects.create(
        token=secrets.token_urlsafe(16),
        customer=customer,
        currency=quote.currency,
        country=quote.jurisdiction.country,
        region=quote.jurisdiction.region,
        tax_evidence=evidence,
        vat_id=vat_id,
        reverse_charge=quote.jurisdiction.reverse_charge,
        visitor_id=attribution.visitor_id,
        utm_source=attribution.source,
        utm_medium=attribution.medium,
        utm_campaign=attribution.campaign,
        referrer=attribution.referrer,
        card_saved=save_card,
        variant=variant,
        reminder_consent=remind,
        coupon_code=quote.coupon.code if quote.coupon else "",
        recovered_from_id=recovered_from_id,
    )
    OrderLine.objects.bulk_create(
        [
            OrderLine(
                order=order,
                kind=line.kind,
                product=line.product,
                offer_id=line.offer_id,
                description=line.description,
                discount_amount=line.discount_amount,
                net_amount=line.net.amount,
                tax_amount=line.tax.amount,
                total_amount=line.total.amount,
                currency=line.total.currency,
                tax_rate=line.rate,
                tax_inclusive=line.inclusive,
                tax_country=quote.jurisdiction.country,
                tax_region=quote.jurisdiction.region,
                reverse_charge=quote.jurisdiction.reverse_charge,
            )
            for line in quote.lines
        ]
    )
    if quote.coupon is not None:
        coupon_redeem(
            coupon=quote.coupon, order_id=order.pk, customer_id=customer.pk, amount=quote.discount
        )
    return order


def _pending_order(token: str) -> Order:
    order = Order.objects.select_related("customer__gateway_customer").filter(token=token).first()
    if order is None:
        raise CheckoutError("order", "This checkout does not exist.")
    return order


def _fail(order: Order, reason: str) -> None:
    with transaction.atomic():
        if order_status_move(order=order, to=OrderStatus.FAILED):
            event_append(EventName.CHECKOUT_FAILED, reason=reason, **event_fields_for(order))


class CountryToConfirm(CheckoutError):
    """The location evidence disagrees: the buyer confirms their country before paying."""

    def __init__(self, *, declared: str, other: str, source: str):
        from storefront.countries import COUNTRIES

        what = "card was issued" if source == "card_country" else "connection is"
        super().__init__(
            "country_confirm",
            f"Your {what} in {COUNTRIES.get(other, other)}, but you chose "
            f"{COUNTRIES.get(declared, declared)}. Please confirm that you live in "
            f"{COUNTRIES.get(declared, declared)}; tax is charged where you live.",
        )
        self.declared, self.other = declared, other


def _location_evidence(order: Order, setup: SetupResult, confirm_country: str) -> list[OrderLine]:
    """Add the card's issuing country to the order's evidence; if the store collects EU VAT
    and the evidence disagrees, the buyer's confirmation is needed (and recorded). Records
    it (committed, before any charge) and reads the order's lines in the same statement."""
    from django.utils import timezone

    from storefront.models import StoreSettings

    evidence = dict(order.tax_evidence or {})
    evidence.setdefault("declared_country", order.country)
    card = payments.setup_card_country(setup)
    if card:
        evidence["card_country"] = card
    conflict = evidence_conflict(evidence)
    evidence["conflict"] = conflict
    if conflict and StoreSettings.current().eu_vat_evidence:
        if confirm_country != order.country:
            Order.objects.filter(pk=order.pk).update(tax_evidence=evidence)
            raise CountryToConfirm(
                declared=order.country, other=evidence[conflict], source=conflict
            )
        evidence["confirmed_by_buyer"] = order.country
        evidence["confirmed_at"] = timezone.now().isoformat()
    field = Order._meta.get_field("tax_evidence")
    lines = update_then_select(
        (selectors.ORDER_LINES, (order.pk,)),
        table=Order._meta.db_table,
        assignments='"tax_evidence" = %s',
        where='"id" = %s',
        params=[field.get_db_prep_save(evidence, connection), order.pk],
    )
    order.tax_evidence = evidence
    return lines


def checkout_pay(
    *, order_token: str, setup_ref: str, confirm_country: str = ""
) -> ChargeAttempt | None:
    """Charge core + bump (+ tax) in one payment with the card the buyer just set up. None:
    a free trial with nothing to pay today, started without a payment (free_trial.py)."""
    _refuse_if_not_accepting()
    order = selectors.order_for_payment(token=order_token)  # and whether it has an attempt
    if order is None:
        raise CheckoutError("order", "This checkout does not exist.")
    if order.primary_attempt_id is not None:  # a double submit: the one attempt there is
        return ChargeAttempt.objects.get(pk=order.primary_attempt_id)
    if order.status == OrderStatus.PAID:  # a free trial's double submit: started already
        return None
    if order.status != OrderStatus.PENDING:
        raise CheckoutError("order", "This checkout is closed. Please start again.")
    if not setup_ref or setup_ref != order.setup_ref:
        raise CheckoutError("card", "Your card details did not match this checkout.")
    gateway_customer = order.customer.gateway_customer
    try:
        setup = payments.card_setup_retrieve(setup_ref=setup_ref)
    except (GatewayUnavailable, GatewayRejected) as exc:
        raise CheckoutError(
            "card", "Payments are unavailable right now. Please try again."
        ) from exc
    if setup.status != "succeeded" or not setup.payment_method_ref:
        _fail(order, "card_setup_failed")
        raise CheckoutError("card", "Your card could not be verified. Please try another card.")
    try:
        payments.card_attach_from_setup(customer=gateway_customer, setup=setup)
    except GatewayRejected as exc:
        _fail(order, "card_declined")
        raise CheckoutError("card", "Your card was declined. Please try another card.") from exc
    except GatewayUnavailable as exc:
        raise CheckoutError(
            "card", "Payments are unavailable right now. Please try again."
        ) from exc
    lines = _location_evidence(order, setup, (confirm_country or "").upper())
    total = sum(line.total_amount for line in lines)
    if total == 0 and not trial_still_offered(lines):
        _fail(order, "terms_changed")
        raise CheckoutError(
            "product", "This free trial's terms changed. Nothing was charged; please start again."
        )
    if order.card_saved or total == 0:
        # A free trial's card is saved for its first charge whatever the one-click box says
        # (the box still decides one-click offers: order.card_saved).
        payments.vault_save(
            customer=gateway_customer,
            payment_method_ref=setup.payment_method_ref,
            consent_text=CONSENT_TEXT if total else TRIAL_CONSENT_TEXT,
        )
    if total == 0:
        trial_start(order, len(lines))
        return None

    # attempt_get_or_create absorbs the race of two submits: both get the one attempt.
    def create() -> tuple[ChargeAttempt, bool]:
        return payments.attempt_get_or_create(
            purpose=orderkeys.order_purpose(order.pk, orderkeys.PRIMARY),
            reference=order.reference,
            amount=Money(total, order.currency),
            customer_ref=gateway_customer.gateway_ref,
            payment_method_ref=setup.payment_method_ref,
            off_session=False,
            allocation={line.line_key: line.total_amount for line in lines},
        )

    if not order.coupon_code:
        attempt, _ = create()
        return payments.attempt_execute(attempt_id=attempt.pk)
    # With a coupon: under the order's lock and still pending, so a newer checkout of this
    # buyer's that took its coupon use back (coupon_holds.coupon_hold_supersede) and this Pay
    # cannot both go ahead.
    with transaction.atomic():
        status = Order.objects.select_for_update().values_list("status", flat=True).get(pk=order.pk)
        if status != OrderStatus.PENDING:
            existing = selectors.order_primary_attempt(order_id=order.pk)
            if existing is not None:  # the other submit of a double click got there first
                return existing
            raise CheckoutError("order", "This checkout is closed. Please start again.")
        try:  # left open past the hold time, the checkout gave its use back: take it again
            coupon_holds.coupon_hold_reclaim(order_id=order.pk)
        except CouponRefused as exc:
            raise CheckoutError("coupon", exc.message) from exc
        attempt, _ = create()
    return payments.attempt_execute(attempt_id=attempt.pk)


def checkout_confirm(*, order_token: str) -> ChargeAttempt:
    """After on-session authentication: re-read the payment from the gateway and record it."""
    order = _pending_order(order_token)
    attempt = selectors.order_primary_attempt(order_id=order.pk)
    if attempt is None:
        raise CheckoutError("order", "There is no payment to confirm for this checkout.")
    try:
        return payments.attempt_refresh(attempt_id=attempt.pk)
    except GatewayUnavailable:
        return attempt
