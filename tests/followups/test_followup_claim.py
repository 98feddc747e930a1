"""The follow-up claim's own freshness check, reached directly (not through followups_due,
which leaves fresh claims out before any send is tried)."""

from __future__ import annotations

import datetime as dt

from storefront.models import FollowUpSend, FollowUpStatus
from storefront.services import followups
from tests.followups.helpers import T0, catalog, paid_order

CLAIMED_AT = T0 + dt.timedelta(hours=24)


def test_a_send_for_a_freshly_claimed_row_sends_nothing_and_a_stale_claim_is_taken_over(
    tenant, smtp_mail
):
    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    step1 = FollowUpSend.objects.get(step=1)
    # Another worker claimed it a moment ago and is sending it now.
    FollowUpSend.objects.filter(pk=step1.pk).update(
        status=FollowUpStatus.SENDING, claimed_at=CLAIMED_AT, claims=1
    )
    fresh = CLAIMED_AT + followups.claim_stale_after() - dt.timedelta(minutes=1)

    assert followups.followup_send(send_id=step1.pk, now=fresh) is False

    step1.refresh_from_db()
    assert (step1.status, step1.claimed_at, step1.claims) == (FollowUpStatus.SENDING, CLAIMED_AT, 1)
    assert smtp_mail.messages == []

    stale = CLAIMED_AT + followups.claim_stale_after() + dt.timedelta(minutes=1)
    assert followups.followup_send(send_id=step1.pk, now=stale) is True
    step1.refresh_from_db()
    assert (step1.status, step1.claims) == (FollowUpStatus.SENT, 2)
    assert len(smtp_mail.messages) == 1
