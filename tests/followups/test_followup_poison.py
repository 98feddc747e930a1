"""Follow-up sends are a loop over records: one email that cannot be sent is recorded and
skipped, quarantined after LOOP_QUARANTINE_AFTER runs; an unreachable server counts against none."""

from __future__ import annotations

import datetime as dt

import pytest

from core.models import LoopFailure
from tests.followups.smtp import mail_server_unreachable, refusing_mail_server
from tests.loops_support import needs_attention_page

H = dt.timedelta(hours=1)


@pytest.fixture
def quarantine_after_3(settings):
    settings.LOOP_QUARANTINE_AFTER = 3
    return 3


def test_a_follow_up_email_that_cannot_be_sent_does_not_stop_the_others(
    tenant, smtp_mail, quarantine_after_3
):
    from storefront.models import Customer, FollowUpSend, FollowUpStatus
    from storefront.services import followups
    from tests.followups.helpers import T0, catalog, paid_order

    core, _, _ = catalog()
    # Due first: a buyer whose stored address breaks the email's headers.
    paid_order("poison@example.com", core, paid_at=T0 - H)
    Customer.objects.filter(email="poison@example.com").update(
        email="poison@example.com\nBcc: everyone@example.com"
    )
    paid_order("buyer@example.com", core)
    poison = FollowUpSend.objects.get(step=1, customer__email__startswith="poison")

    assert followups.followups_send_due(now=T0 + 25 * H) == 1
    assert len(smtp_mail.to("buyer@example.com")) == 1
    row = LoopFailure.objects.get(loop="storefront.followups", record_id=str(poison.pk))
    assert row.tries == 1 and row.quarantined_at is None
    poison.refresh_from_db()
    assert poison.status == FollowUpStatus.SCHEDULED  # handed back, not lost

    followups.followups_send_due(now=T0 + 26 * H)
    followups.followups_send_due(now=T0 + 27 * H)
    row.refresh_from_db()
    assert row.tries == 3 and row.quarantined_at is not None
    assert poison.pk not in followups.followups_due(now=T0 + 28 * H)
    assert "follow-up email" in needs_attention_page(tenant)
    assert len(smtp_mail.messages) == 1


def test_an_unreachable_mail_server_stops_the_run_and_counts_against_no_email(tenant, settings):
    from storefront.services import followups
    from tests.followups.helpers import T0, catalog, paid_order

    core, _, _ = catalog()
    paid_order("a@example.com", core)
    paid_order("b@example.com", core)
    mail_server_unreachable(settings)

    with pytest.raises(OSError):
        followups.followups_send_due(now=T0 + 25 * H)
    assert not LoopFailure.objects.filter(loop="storefront.followups", schema_name="t1").exists()


def test_a_mailbox_the_server_refuses_for_good_is_counted_and_the_others_are_sent(
    tenant, settings, smtp_mail
):
    from storefront.models import FollowUpSend
    from storefront.services import followups
    from tests.followups.helpers import T0, catalog, paid_order

    with refusing_mail_server(settings) as collector:
        core, _, _ = catalog()
        paid_order("gone@example.com", core, paid_at=T0 - H)  # due first
        paid_order("here@example.com", core)

        assert followups.followups_send_due(now=T0 + 25 * H) == 1
        assert len(collector.to("here@example.com")) == 1
        gone = FollowUpSend.objects.get(step=1, customer__email="gone@example.com")
        row = LoopFailure.objects.get(loop="storefront.followups", record_id=str(gone.pk))
        assert "550" in row.last_error and row.tries == 1
