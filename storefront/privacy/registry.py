"""Every model that can hold something about a buyer, declared once: its rows for an export,
and what an erasure does to them (or why they stay).

The coverage rule (`needs_declaration`, checked by tests/privacy/test_registry.py over every
installed model): a model with a field whose name mentions email, customer, visitor or
payload/response body, or with a foreign key to a customer, a gateway customer or an order,
must be registered here or exempted in EXEMPT with the reason. A model added later by anyone
fails that test until its author decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import models
from django.db.models import F, Func, Q, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone

from analytics.models import (
    Assignment,
    CustomerSummary,
    Event,
    OrderSummary,
    VisitorDay,
    VisitorFirst,
)
from audit.models import AuditEntry
from core import orderkeys
from offers.models import CouponCustomerUse, CouponRedemption, OfferDecision
from partners.models import IdempotencyRecord, WebhookDelivery
from payments.models import (
    ChargeAttempt,
    Dispute,
    GatewayCustomer,
    LedgerEntry,
    Refund,
    SavedPaymentMethod,
)
from storefront.models import (
    CreditNote,
    Customer,
    FollowUpSend,
    FollowUpStatus,
    Invoice,
    Order,
    OrderLine,
    PrivacyRequest,
)
from subscriptions.models import Subscription

ERASED_DOMAIN = "erased.invalid"  # RFC 2606: can never be a real mailbox


@dataclass
class Subject:
    """Everything by which the store's rows refer to one buyer."""

    email: str  # core.identity.email_key form
    digest: str  # core.identity.email_digest
    customer_ids: list[int] = field(default_factory=list)
    order_ids: list[int] = field(default_factory=list)
    gateway_customer_ids: list[int] = field(default_factory=list)
    visitor_ids: list[str] = field(default_factory=list)

    @property
    def references(self) -> list[str]:
        return [orderkeys.order_reference(pk) for pk in self.order_ids]

    @property
    def email_key(self) -> str:
        return f"email:{self.email}"[:64]  # offers.experiments.buyer_key without a cookie

    @property
    def pseudonym(self) -> str:
        return f"erased-{self.digest[:16]}@{ERASED_DOMAIN}"

    @property
    def found(self) -> bool:
        return bool(self.customer_ids or self.gateway_customer_ids)


@dataclass(frozen=True)
class Entry:
    label: str
    rows: Callable[[Subject], models.QuerySet]
    # Changes the rows for an erasure; returns how many rows it changed. None: kept as is.
    erase: Callable[[Subject], int] | None
    kept: str = ""  # what stays and why (shown in the erasure's summary and the docs)


# --- helpers -------------------------------------------------------------------------------


def _pattern(subject: Subject) -> str:
    return re.escape(subject.email)


def _replaced(column: str, subject: Subject, *, json: bool = False):
    """The column with every spelling (any case) of the address replaced by the pseudonym."""
    source = Cast(F(column), TextField()) if json else F(column)
    replaced = Func(
        source,
        Value(_pattern(subject)),
        Value(subject.pseudonym),
        Value("gi"),
        function="regexp_replace",
        output_field=TextField(),
    )
    return Cast(replaced, models.JSONField()) if json else replaced


def _mentions(queryset: models.QuerySet, columns: dict[str, bool], subject: Subject):
    """Rows of `queryset` whose columns ({name: is_json}) mention the address."""
    condition = Q()
    for index, (column, json) in enumerate(columns.items()):
        alias = f"_privacy_text_{index}"
        queryset = queryset.annotate(**{alias: Cast(F(column), TextField()) if json else F(column)})
        condition |= Q(**{f"{alias}__icontains": subject.email})
    return queryset.filter(condition)


def _scrub(model: type[models.Model], columns: dict[str, bool]) -> Callable[[Subject], int]:
    def erase(subject: Subject) -> int:
        rows = _mentions(model.objects.all(), columns, subject)
        ids = list(rows.values_list("pk", flat=True))
        if not ids:
            return 0
        model.objects.filter(pk__in=ids).update(
            **{column: _replaced(column, subject, json=json) for column, json in columns.items()}
        )
        return len(ids)

    return erase


# --- what each model gives and loses --------------------------------------------------------


def _erase_customers(subject: Subject) -> int:
    now = timezone.now()
    count = 0
    for pk in subject.customer_ids:
        count += Customer.objects.filter(pk=pk).update(
            email=f"erased-{subject.digest[:16]}-{pk}@{ERASED_DOMAIN}",
            erased_at=now,
            unsubscribed_at=now,
        )
    return count


def gateway_customer_pseudonym(subject: Subject, pk: int) -> str:
    return f"erased-{subject.digest[:16]}-g{pk}@{ERASED_DOMAIN}"


def _erase_gateway_customers(subject: Subject) -> int:
    count = 0
    for pk in subject.gateway_customer_ids:
        count += GatewayCustomer.objects.filter(pk=pk).update(
            email=gateway_customer_pseudonym(subject, pk)
        )
    return count


def _erase_orders(subject: Subject) -> int:
    # The referrer is the page the buyer came from (it can carry their address in a query).
    return Order.objects.filter(pk__in=subject.order_ids).exclude(referrer="").update(referrer="")


def _erase_followups(subject: Subject) -> int:
    return FollowUpSend.objects.filter(
        customer_id__in=subject.customer_ids,
        status__in=[FollowUpStatus.SCHEDULED, FollowUpStatus.SENDING],
    ).update(status=FollowUpStatus.SKIPPED, skipped_reason="erased")


def _erase_saved_cards(subject: Subject) -> int:
    return SavedPaymentMethod.objects.filter(customer_id__in=subject.gateway_customer_ids).delete()[
        0
    ]


def _erase_assignments(subject: Subject) -> int:
    pseudonym = f"email:erased-{subject.digest[:16]}"
    return Assignment.objects.filter(visitor_key=subject.email_key).update(visitor_key=pseudonym)


def _erase_privacy_requests(subject: Subject) -> int:
    return (
        PrivacyRequest.objects.filter(email_digest=subject.digest)
        .exclude(email="", result=None)
        .update(email="", result=None)
    )


def _erase_subscriptions(subject: Subject) -> int:
    """A buyer who asked to be erased is not billed again: running subscriptions end now
    (through the status machine, so the history and partners' webhook record it)."""
    from django.utils import timezone

    from subscriptions.models import Subscription, SubscriptionStatus
    from subscriptions.services import subscription_status_move

    ended = 0
    running = Subscription.objects.filter(customer_id__in=subject.customer_ids).exclude(
        status__in=[SubscriptionStatus.CANCELED, SubscriptionStatus.COMPLETED]
    )
    for sub in running:
        ended += subscription_status_move(
            sub=sub, to=SubscriptionStatus.CANCELED, end_reason="erased", ended_at=timezone.now()
        )
    return ended


def _visitor_rows(model):
    return lambda s: model.objects.filter(visitor_id__in=s.visitor_ids + [s.email_key])


def _audit_rows(subject: Subject) -> models.QuerySet:
    about = Q(object_type="storefront.customer", object_id__in=map(str, subject.customer_ids))
    about |= Q(object_type="storefront.order", object_id__in=map(str, subject.order_ids))
    mentions = _mentions(
        AuditEntry.objects.all(), {"object_repr": False, "summary": False, "changes": True}, subject
    )
    return AuditEntry.objects.filter(about | Q(pk__in=mentions.values("pk")))


REGISTRY: dict[str, Entry] = {
    entry.label: entry
    for entry in [
        Entry(
            "storefront.customer",
            lambda s: Customer.objects.filter(pk__in=s.customer_ids),
            _erase_customers,
            "the row stays (orders, follow-ups and offer caps point at it) with a pseudonym "
            "for its address, unsubscribed",
        ),
        Entry(
            "storefront.order",
            lambda s: Order.objects.filter(pk__in=s.order_ids),
            _erase_orders,
            "amounts, status, country and tax evidence stay (tax records); the referrer goes",
        ),
        Entry(
            "storefront.orderline",
            lambda s: OrderLine.objects.filter(order_id__in=s.order_ids),
            None,
            "invoice lines: amounts and tax are tax records; they hold nothing personal",
        ),
        Entry(
            "storefront.followupsend",
            lambda s: FollowUpSend.objects.filter(customer_id__in=s.customer_ids),
            _erase_followups,
            "scheduled emails are skipped (reason 'erased'); sent ones stay as the record",
        ),
        Entry(
            "storefront.privacyrequest",
            lambda s: PrivacyRequest.objects.filter(email_digest=s.digest),
            _erase_privacy_requests,
            "earlier requests keep their state and times; their address and export go",
        ),
        Entry(
            "offers.offerdecision",
            lambda s: OfferDecision.objects.filter(
                Q(customer_id__in=s.customer_ids) | Q(order_id__in=s.order_ids)
            ),
            None,
            "the offer caps and the prices shown (frozen with their tax) refer to the "
            "pseudonymised customer; nothing personal in them",
        ),
        Entry(
            "payments.gatewaycustomer",
            lambda s: GatewayCustomer.objects.filter(pk__in=s.gateway_customer_ids),
            _erase_gateway_customers,
            "the row stays (charges refer to its gateway reference) with a pseudonym; the "
            "gateway's copy of the address is replaced first (services.data_erase)",
        ),
        Entry(
            "payments.savedpaymentmethod",
            lambda s: SavedPaymentMethod.objects.filter(customer_id__in=s.gateway_customer_ids),
            _erase_saved_cards,
            "saved cards are forgotten: no more one-click offers for this buyer",
        ),
        Entry(
            "payments.chargeattempt",
            lambda s: ChargeAttempt.objects.filter(reference__in=s.references),
            None,
            "charges are ledger records (gateway references and amounts, nothing personal)",
        ),
        Entry(
            "payments.ledgerentry",
            lambda s: LedgerEntry.objects.filter(reference__in=s.references),
            None,
            "the ledger is kept whole: every cent charged or refunded",
        ),
        Entry(
            "payments.refund",
            lambda s: Refund.objects.filter(reference__in=s.references),
            None,
            "refunds are ledger records",
        ),
        Entry(
            "payments.dispute",
            lambda s: Dispute.objects.filter(reference__in=s.references),
            None,
            "disputes are ledger records (the gateway's references, amount, reason and dates; "
            "nothing personal)",
        ),
        Entry(
            "analytics.event",
            lambda s: Event.objects.filter(
                Q(customer_id__in=s.customer_ids)
                | Q(order_id__in=s.order_ids)
                | Q(visitor_id__in=s.visitor_ids + [s.email_key])
            ),
            _scrub(Event, {"visitor_id": False, "properties": True}),
            "events stay (they are the numbers on the dashboard) referring to the pseudonymised "
            "customer and the browser's random visitor id; an address in them is replaced",
        ),
        Entry(
            "analytics.assignment",
            lambda s: Assignment.objects.filter(visitor_key__in=s.visitor_ids + [s.email_key]),
            _erase_assignments,
            "an experiment arm keyed by the address is re-keyed to a pseudonym",
        ),
        Entry(
            "analytics.visitorfirst",
            _visitor_rows(VisitorFirst),
            _scrub(VisitorFirst, {"visitor_id": False}),
            "read model of the event log, same rule",
        ),
        Entry(
            "analytics.visitorday",
            _visitor_rows(VisitorDay),
            _scrub(VisitorDay, {"visitor_id": False}),
            "read model of the event log, same rule",
        ),
        Entry(
            "analytics.ordersummary",
            lambda s: OrderSummary.objects.filter(order_id__in=s.order_ids),
            None,
            "read model of the ledger: amounts per order, nothing personal",
        ),
        Entry(
            "analytics.customersummary",
            lambda s: CustomerSummary.objects.filter(customer_id__in=s.customer_ids),
            None,
            "read model of the ledger: amounts per customer id, nothing personal",
        ),
        Entry(
            "audit.auditentry",
            _audit_rows,
            _scrub(AuditEntry, {"object_repr": False, "summary": False, "changes": True}),
            "who did what stays; the address in an entry's details is replaced",
        ),
        Entry(
            "partners.webhookdelivery",
            lambda s: WebhookDelivery.objects.filter(
                Q(payload__customer_id__in=s.customer_ids)
                | Q(payload__order_id__in=s.order_ids)
                | Q(
                    pk__in=_mentions(WebhookDelivery.objects.all(), {"payload": True}, s).values(
                        "pk"
                    )
                )
            ),
            _scrub(WebhookDelivery, {"payload": True}),
            "stored payloads of webhooks sent to partners: the address is replaced (and "
            "deliveries are pruned after RETENTION_DELIVERY_LOG_DAYS)",
        ),
        Entry(
            "offers.couponredemption",
            lambda s: CouponRedemption.objects.filter(
                Q(customer_id__in=s.customer_ids) | Q(order_id__in=s.order_ids)
            ),
            None,
            "which order used which code and how much it took off: accounting records that "
            "refer to the pseudonymised customer; nothing personal in them",
        ),
        Entry(
            "offers.couponcustomeruse",
            lambda s: CouponCustomerUse.objects.filter(customer_id__in=s.customer_ids),
            None,
            "a count of the buyer's uses of a code (its per-buyer limit); nothing personal",
        ),
        Entry(
            "storefront.invoice",
            lambda s: Invoice.objects.filter(order_id__in=s.order_ids),
            _scrub(Invoice, {"buyer": True}),
            "invoices are tax records: number, amounts, tax lines, the buyer's country and VAT "
            "ID stay; the buyer's address on them is replaced",
        ),
        Entry(
            "storefront.creditnote",
            lambda s: CreditNote.objects.filter(invoice__order_id__in=s.order_ids),
            _scrub(CreditNote, {"buyer": True}),
            "credit notes, the same rule as invoices",
        ),
        Entry(
            "subscriptions.subscription",
            lambda s: Subscription.objects.filter(customer_id__in=s.customer_ids),
            _erase_subscriptions,
            "the subscription's periods, amounts and history stay (they are the billing "
            "record); a running one ends now, so the buyer is never charged again",
        ),
        Entry(
            "partners.idempotencyrecord",
            lambda s: _mentions(IdempotencyRecord.objects.all(), {"response_body": True}, s),
            _scrub(IdempotencyRecord, {"response_body": True}),
            "stored API replies kept for replays: the address is replaced",
        ),
    ]
}

# Models that match the rule but hold nothing of a buyer's, with the reason.
EXEMPT: dict[str, str] = {
    "tenants.creator": "the creator's own account (owner_email), not a buyer's",
    "auth.user": "staff accounts of the store or platform, not buyers",
    "offers.offer": "customer_cap_hours is a setting, not a customer",
    "tenants.mailsuppression": "keeps only a keyed digest of an address (core.identity)",
    "tenants.sendingdomain": "the creator's sending domain; no buyer data",
    "partners.webhooksubscription": "a partner's endpoint; no buyer data",
    "analytics.visitorfirstday": "counts of visitors per day; no visitor in it",
    "storefront.storesettings": "the store's own support address, not a buyer's",
    "storefront.staffinvitation": "invitations to the creator's team (staff), not buyers",
    "offers.coupon": "max_per_customer is a setting, not a customer",
}

_NAME_RE = re.compile(r"email|customer|visitor|payload|response_body|buyer")
_PERSONAL_TARGETS = {"storefront.customer", "storefront.order", "payments.gatewaycustomer"}


def needs_declaration(model: type[models.Model]) -> bool:
    """The coverage rule: could this model hold something about a buyer?"""
    for model_field in model._meta.get_fields():
        if not model_field.concrete:
            continue
        if _NAME_RE.search(model_field.name):
            return True
        target = getattr(model_field, "related_model", None)
        if isinstance(target, str):  # a lazy reference not resolved yet ("app.Model")
            label = target.lower()
        else:
            label = target._meta.label_lower if target is not None else ""
        if label in _PERSONAL_TARGETS:
            return True
    return False


def undeclared(candidates) -> list[str]:
    """Labels of `candidates` that match the rule but are neither registered nor exempt."""
    return sorted(
        model._meta.label_lower
        for model in candidates
        if needs_declaration(model)
        and model._meta.label_lower not in REGISTRY
        and model._meta.label_lower not in EXEMPT
    )
