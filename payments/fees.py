"""The platform's fee on a store's charges: `Creator.fee_bps` (basis points) and
`Creator.fee_fixed` (minor units), else `PLATFORM_FEE_BPS` / `PLATFORM_FEE_FIXED`; half-up
rounded, capped at the charge. A charge keeps the fee that applied when it was made
(`ChargeAttempt.fee_bps` / `fee_fixed`, written by `services.attempt_get_or_create` in the
attempt's own INSERT, `fee_columns_sql`), so a fee
changed before a charge's transfer is made (payouts still pending, a lost message caught up
by beat) applies to later sales only."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection


@dataclass(frozen=True)
class Fee:
    bps: int
    fixed: int

    def of(self, gross: int) -> int:
        """Half-up rounding of the percentage, plus the fixed part, capped at the charge."""
        return min(gross, (gross * self.bps + 5_000) // 10_000 + self.fixed)


def _fee(bps: int | None, fixed: int | None) -> Fee:
    return Fee(
        bps=settings.PLATFORM_FEE_BPS if bps is None else bps,
        fixed=settings.PLATFORM_FEE_FIXED if fixed is None else fixed,
    )


def store_fee(creator=None) -> Fee:
    """The store's fee now, read from its row."""
    from tenants.models import Creator

    creator = creator if creator is not None else connection.tenant
    row = Creator.objects.filter(pk=creator.pk).values("fee_bps", "fee_fixed").first() or {}
    return _fee(row.get("fee_bps"), row.get("fee_fixed"))


def fee_columns_sql() -> dict[str, tuple[str, list]]:
    """A new charge attempt's fee columns as SQL of its own INSERT (core.returning
    `insert_returning(computed=…)`): the store's fee read from its row as the row is written,
    the platform's default where the store has none. No statement of its own, and never a
    fee a process kept from before a change."""
    from django_tenants.utils import get_public_schema_name

    from tenants.models import Creator

    table = f'"{get_public_schema_name()}"."{Creator._meta.db_table}"'
    pk = getattr(connection.tenant, "pk", None)
    return {
        name: (
            f'COALESCE((SELECT "{name}" FROM {table} WHERE "id" = %s), %s)',
            [pk, default],
        )
        for name, default in (
            ("fee_bps", settings.PLATFORM_FEE_BPS),
            ("fee_fixed", settings.PLATFORM_FEE_FIXED),
        )
    }


def charge_fee(charge) -> Fee:
    """The fee a charge was made under; the store's fee now for a charge from before charges
    kept theirs."""
    if charge.fee_bps is None or charge.fee_fixed is None:
        return store_fee()
    return Fee(bps=charge.fee_bps, fixed=charge.fee_fixed)
