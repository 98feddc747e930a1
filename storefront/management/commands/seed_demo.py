"""Seed the demo creator at demo.<platform domain>: a product ladder, its bump, one-click
upsell, downsell and follow-up cross-sell, and a few tax rates (idempotent)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from offers.models import Offer, OfferKind
from storefront.models import Product, StoreSettings, TaxRate
from subscriptions.models import IntervalUnit, Plan, PlanKind
from tenants.models import Creator
from tenants.services import creator_create, public_tenant_ensure

# kind, offered product, price (cents), headline, benefit, refund terms
DEMO_OFFERS = [
    (
        OfferKind.BUMP,
        "preset-pack",
        900,
        "Add the preset pack",
        "Forty presets tuned to the lessons: one click, the look you just learned.",
        "Refundable within 30 days.",
    ),
    (
        OfferKind.UPSELL,
        "editing-masterclass",
        1900,
        "Add the editing masterclass",
        "Three hours of live edits, start to finish, with the raw files to follow along.",
        "Refundable within 30 days, no questions asked.",
    ),
    (
        OfferKind.DOWNSELL,
        "portfolio-review",
        900,
        "Or just a portfolio review",
        "A recorded, personal critique of ten of your photos.",
        "Refundable until the review is recorded.",
    ),
    (
        OfferKind.CROSS_SELL,
        "editing-masterclass",
        1700,
        "Finish your edits in minutes",
        "The masterclass walks through real edits start to finish.",
        "Refundable within 30 days.",
    ),
]
DEMO_SUPPORT = ("support@demo.example", "demo-support-2026")  # login, password
DEMO_TAX = [
    ("DE", "", "19.000", "VAT"),
    ("GB", "", "20.000", "VAT"),
    ("FR", "", "20.000", "TVA"),
    ("US", "CA", "7.250", "Sales tax"),
]

DEMO_LADDER = [
    # slug, name, tier, position, price (cents), anchor (cents), description
    (
        "photo-basics",
        "Photo Basics course",
        Product.Tier.ENTRY,
        1,
        4900,
        7900,
        "Twelve short lessons that take you from auto mode to confident manual shooting.",
    ),
    (
        "preset-pack",
        "Lightroom preset pack",
        Product.Tier.COMPANION,
        2,
        1200,
        None,
        "Forty presets tuned to the course's lessons: one click, the look you just learned.",
    ),
    (
        "editing-masterclass",
        "Editing masterclass",
        Product.Tier.PREMIUM,
        3,
        2400,
        3900,
        "Three hours of live edits, start to finish, with the raw files to follow along.",
    ),
    (
        "portfolio-review",
        "Portfolio review",
        Product.Tier.PREMIUM,
        4,
        1900,
        None,
        "A recorded, personal critique of ten of your photos.",
    ),
]

# The membership: monthly, a week free to try (docs/subscriptions.md), so the subscriptions
# panel (MRR and its movements, trial conversion, churn) has a story in the demo too.
DEMO_CLUB = (
    "photo-club",
    "Photo Club membership",
    5,
    1500,
    "A new assignment every month, feedback from other members and a live critique call. "
    "The first week is free; cancel any time from the link on your receipt.",
)
DEMO_CLUB_TRIAL_DAYS = 7


class Command(BaseCommand):
    help = "Create (or reuse) the demo creator and its product ladder."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="demo-store-2026")
        parser.add_argument(
            "--no-history",
            action="store_true",
            help="only the catalog: skip the 90 days of orders (storefront/demo_history.py)",
        )
        parser.add_argument(
            "--history-only",
            action="store_true",
            help="only the history, in an existing demo store (bin/run runs it in the background)",
        )
        parser.add_argument("--days", type=int, default=None, help="days of history (90)")

    def handle(self, *args, **opts):
        base = settings.PLATFORM_DOMAIN
        public_tenant_ensure(domain=base)
        domain = f"demo.{base}"
        creator = Creator.objects.filter(slug="demo").first()
        if opts["history_only"]:
            if creator is None:
                raise CommandError("There is no demo store yet: run seed_demo first.")
            with tenant_context(creator):
                self._history(opts["days"])
            return
        if creator is None:
            self.stdout.write("Creating the demo creator…")
            creator = creator_create(
                slug="demo",
                display_name="Demo Photography",
                domain=domain,
                owner_email="owner@demo.example",
                password=opts["password"],
            ).creator
        else:
            self.stdout.write("Demo creator exists: reusing it.")
        with tenant_context(creator):
            user = get_user_model().objects.get(username="owner")
            user.set_password(opts["password"])
            user.save(update_fields=["password"])
            self.catalog(domain)
            self._team()
            self._payouts(domain)
            if not opts["no_history"]:
                self._history(opts["days"])
        self.stdout.write(self.style.SUCCESS(f"Demo store ready at {domain}"))

    def catalog(self, domain: str) -> None:
        """The ladder, its offers, store settings and tax rates (in the current schema)."""
        total = len(DEMO_LADDER)
        for i, (slug, name, tier, pos, price, anchor, desc) in enumerate(DEMO_LADDER, 1):
            Product.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "tier": tier,
                    "ladder_position": pos,
                    "price_amount": price,
                    "anchor_amount": anchor,
                    "currency": "USD",
                    "description": desc,
                    "status": Product.Status.ACTIVE,
                    "deliverable_url": f"https://{domain}/downloads/{slug}.zip",
                },
            )
            self.stdout.write(f"  [{i}/{total}] product {slug}")
        self._offers()
        self._club(domain)
        StoreSettings.objects.update_or_create(
            pk=1,
            defaults={
                "statement_descriptor": "DEMO PHOTOGRAPHY",
                "support_email": "help@demo.example",
            },
        )
        for country, region, rate, name in DEMO_TAX:
            TaxRate.objects.update_or_create(
                country=country, region=region, defaults={"rate": rate, "name": name}
            )
        self.stdout.write(f"  offers: {len(DEMO_OFFERS)}, tax rates: {len(DEMO_TAX)}")

    def _club(self, domain: str) -> None:
        slug, name, pos, price, desc = DEMO_CLUB
        club, _ = Product.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "tier": Product.Tier.COMPANION,
                "ladder_position": pos,
                "price_amount": price,
                "currency": "USD",
                "description": desc,
                "status": Product.Status.ACTIVE,
                "deliverable_url": f"https://{domain}/members/",
            },
        )
        Plan.objects.update_or_create(
            product=club,
            defaults={
                "kind": PlanKind.SUBSCRIPTION,
                "interval_unit": IntervalUnit.MONTH,
                "interval_count": 1,
                "trial_days": DEMO_CLUB_TRIAL_DAYS,
            },
        )
        self.stdout.write(f"  membership: {slug}, monthly, {DEMO_CLUB_TRIAL_DAYS}-day free trial")

    def _team(self) -> None:
        """A support member to try the role with (storefront/team.py): orders and refunds
        up to the store's limit, 403 on offers, keys, payouts and settings."""
        from storefront import team
        from storefront.models import StaffRole

        User = get_user_model()
        member = User.objects.filter(username=DEMO_SUPPORT[0]).first()
        if member is None:
            member = User.objects.create_user(
                username=DEMO_SUPPORT[0], email=DEMO_SUPPORT[0], password=DEMO_SUPPORT[1]
            )
            team._role_apply(member, StaffRole.SUPPORT)
        self.stdout.write(f"  team: owner, and {DEMO_SUPPORT[0]} (support)")

    def _history(self, days: int | None) -> None:
        from storefront.demo_history import DAYS, demo_history_seed

        days = days or DAYS
        self.stdout.write(f"  history: {days} days of orders, through the store's services…")
        self.stdout.flush()

        def progress(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        result = demo_history_seed(days=days, progress=progress)
        if not result.skipped:
            self.stdout.write(
                f"  history: {result.days_seeded} days, {result.orders} paid orders and "
                f"{result.trials} membership trials in {result.seconds:.1f} s"
            )

    def _payouts(self, domain: str) -> None:
        """The demo store starts verified (an operator's store) and connected: its account at
        the local Stripe server is made and onboarded through the local one-click page."""
        from payments.connect import payout_account_current, payout_account_sync
        from payments.gateway import GatewayRejected, GatewayUnavailable

        if not settings.STRIPE_API_BASE:
            self.stdout.write(
                "  payouts: not connected (no local Stripe server; connect from "
                "the admin's getting-started page)"
            )
            return
        try:
            account = payout_account_sync()
            if account is None or not account.charges_enabled:
                account = _demo_onboard(domain)
        except (GatewayUnavailable, GatewayRejected, OSError) as exc:
            self.stdout.write(self.style.WARNING(f"  payouts: could not connect: {exc}"))
            return
        current = payout_account_current()
        self.stdout.write(f"  payouts: {current.account_ref} ({current.state})")

    def _offers(self) -> None:
        core = Product.objects.get(slug="photo-basics")
        upsell = None
        for kind, slug, price, headline, benefit, terms in DEMO_OFFERS:
            offer, _ = Offer.objects.update_or_create(
                kind=kind,
                trigger_product=core,
                defaults={
                    "product": Product.objects.get(slug=slug),
                    "price_amount": price,
                    "currency": "USD",
                    "headline": headline,
                    "benefit": benefit,
                    "refund_terms": terms,
                    "parent": upsell if kind == OfferKind.DOWNSELL else None,
                    "followup_delays_hours": [24, 72] if kind == OfferKind.CROSS_SELL else [],
                },
            )
            offer.full_clean()  # the demo respects the same guardrails as the admin
            if kind == OfferKind.UPSELL:
                upsell = offer


def _demo_onboard(domain: str):
    """Make the demo's connected account and press the local onboarding page's one button
    (devtools: the request goes to the local Stripe server, never to a configured URL)."""
    from devtools.localstripe_connect import onboarding_link_complete
    from payments.connect import payout_account_connect, payout_account_sync

    link = payout_account_connect(
        refresh_url=f"http://{domain}/admin/payouts/refresh/",
        return_url=f"http://{domain}/admin/payouts/return/",
    )
    onboarding_link_complete(link)
    return payout_account_sync()
