"""Fixtures shared by the payments tests."""

import pytest

from tenants.models import Creator


@pytest.fixture
def fee_and_routing_reset(django_db_blocker):
    """For tests that commit (live_tenant): t1's fee and payout routing put back afterwards
    (the public schema's creators are not truncated between tests)."""
    yield
    with django_db_blocker.unblock():
        Creator.objects.filter(slug="t1").update(
            payout_account_ref="", fee_bps=None, fee_fixed=None
        )
