"""The store admin's site: models grouped by the creator's jobs (Sell, Orders and customers,
Money, Insights, Settings) instead of by technical app, and the home page's figures.

`SECTIONS` is the one map of where each model (by label) and each non-model page goes. A model
not in it falls into its app's default section (`APP_SECTIONS`), else into "More", so a model
someone adds tomorrow is never hidden. Permission filtering is Django's own: a model appears
only if the user has its view (or change) permission, and a page link only if the user may view
the model named with it, so narrower roles see fewer sections with no extra code.

Installed as the default admin site (config.settings: `storefront.apps.StoreAdminConfig`), so
every `admin.site.register` and every existing admin URL keep working; the app pages
(/admin/payments/ …) stay, and each section has its own page at /admin/section/<slug>/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from core.admin_guards import guarded


@dataclass(frozen=True)
class Link:
    """A page that is not a model's changelist (the dashboard, the domains page, a filtered
    list), shown to users who may view `model`."""

    name: str
    url_name: str
    # "app_label.ModelName": the view permission that shows this link; "" = every staff user
    # (pages whose view checks only is_staff today: give both a permission together).
    model: str
    query: str = ""  # appended to the URL: "?kind__exact=chargeback", "#money-days"
    dom_id: str = ""
    perm: str = ""  # a permission the page's view requires ("storefront.manage_team")


@dataclass(frozen=True)
class Section:
    slug: str
    name: str
    description: str
    entries: tuple[str | Link, ...] = ()  # model labels and links, in display order
    collapsed: bool = False  # the technical records: reachable, out of the way


SECTIONS: tuple[Section, ...] = (
    Section(
        "sell",
        "Sell",
        "Products, the offer ladder, experiments and follow-up emails",
        (
            "storefront.Product",
            "subscriptions.Plan",
            "offers.Offer",
            "offers.Coupon",
            "analytics.Experiment",
            "storefront.FollowUpSend",
        ),
    ),
    Section(
        "orders",
        "Orders and customers",
        "Who bought what, refunds line by line",
        (
            "storefront.Order",
            "storefront.Customer",
            "subscriptions.Subscription",
            "storefront.Invoice",
            "storefront.CreditNote",
            "storefront.LineAccess",
            "offers.CouponRedemption",
            "storefront.PrivacyRequest",
        ),
    ),
    Section(
        "money",
        "Money",
        "Refunds, disputes, payouts and reconciliation",
        (
            "payments.Refund",
            "payments.Dispute",
            Link(
                "Money per day",
                "store-getting-started",
                "payments.PayoutEntry",
                "#money-days",
            ),
            "payments.PayoutAccount",
            "payments.TransferAttempt",
            "payments.TransferReversal",
            "payments.PayoutEntry",
            "payments.Mismatch",
        ),
    ),
    Section(
        "insights",
        "Insights",
        "What your offers really earn",
        (
            Link("Dashboard", "analytics-dashboard", "", dom_id="dashboard-link"),
            Link("What each figure means", "analytics-glossary", ""),
        ),
    ),
    Section(
        "settings",
        "Settings",
        "Store, tax, domains, team, API keys, webhooks and the audit trail",
        (
            "storefront.StoreSettings",
            "storefront.TaxRate",
            "subscriptions.DunningSettings",
            Link(
                "Brand and preview",
                "store-brand",
                "",
                dom_id="brand-link",
                perm="storefront.change_storesettings",
            ),
            Link("Domains", "store-domains", "", dom_id="domains-link"),
            Link(
                "Email sender",
                "store-sending",
                "",
                dom_id="sending-link",
                perm="storefront.change_storesettings",
            ),
            Link("Team", "store-team", "", dom_id="team-link", perm="storefront.manage_team"),
            "auth.User",
            "auth.Group",
            "partners.ApiKey",
            "partners.WebhookSubscription",
            "audit.AuditEntry",
        ),
    ),
    Section(
        "platform",
        "Platform",
        "Creators and their domains (the platform's own admin)",
        ("tenants.Creator", "tenants.Domain", "tenants.CustomDomain"),
    ),
    Section(
        "more",
        "More",
        "Everything not yet placed in a section",
    ),
    Section(
        "technical",
        "Technical records (for support)",
        "Charge attempts, the ledger, gateway and partner webhooks, events, offer decisions",
        (
            "payments.ChargeAttempt",
            "payments.LedgerEntry",
            "payments.WebhookEvent",
            "partners.WebhookDelivery",
            "analytics.Event",
            "offers.OfferDecision",
            "core.LoopFailure",
        ),
        collapsed=True,
    ),
)

# How a model is named in its section when its own plural would not say what it is to a
# creator (Django's auth models are the store's team).
ROW_NAMES = {"auth.User": "Team members", "auth.Group": "Roles (permission groups)"}

# Where an app's models go when SECTIONS does not name them (a new model lands here).
APP_SECTIONS = {
    "storefront": "sell",
    "offers": "sell",
    "payments": "money",
    "analytics": "insights",
    "partners": "settings",
    "audit": "settings",
    "auth": "settings",
    "tenants": "platform",
    "core": "technical",
}
DEFAULT_SECTION = "more"


def section_of(label: str) -> str:
    """The slug of the section model `label` is listed in."""
    for section in SECTIONS:
        if label in section.entries:
            return section.slug
    return APP_SECTIONS.get(label.split(".", 1)[0], DEFAULT_SECTION)


@dataclass
class _Built:
    section: Section
    rows: list[dict[str, Any]] = field(default_factory=list)


class StoreAdminSite(admin.AdminSite):
    site_header = "Store admin"
    site_title = "Store admin"
    index_title = "Home"

    def register(self, model_or_iterable, admin_class=None, **options):
        return super().register(
            model_or_iterable, guarded(admin_class or admin.ModelAdmin), **options
        )

    def get_urls(self):
        return [
            path("section/<slug:slug>/", self.admin_view(self.section_index), name="section"),
            *super().get_urls(),
        ]

    def get_app_list(self, request, app_label=None):
        # An app's own page (/admin/payments/) keeps Django's list of that app.
        if app_label:
            return super().get_app_list(request, app_label)
        return self.sections(request)

    def sections(self, request) -> list[dict[str, Any]]:
        """The app list regrouped: one dict per non-empty section, in Django's app-list shape
        (name, app_label, app_url, models) so the stock templates and the sidebar render it."""
        apps = self._build_app_dict(request)
        by_label = {
            m["model"]._meta.label: {**m, "name": ROW_NAMES.get(m["model"]._meta.label, m["name"])}
            for app in apps.values()
            for m in app["models"]
        }
        built = {s.slug: _Built(s) for s in SECTIONS}
        placed: set[str] = set()
        for section in SECTIONS:
            for entry in section.entries:
                if isinstance(entry, Link):
                    row = self._link_row(request, entry)
                    if row:
                        built[section.slug].rows.append(row)
                elif entry in by_label:
                    built[section.slug].rows.append(by_label[entry])
                    placed.add(entry)
        for label in sorted(by_label.keys() - placed, key=lambda lb: str(by_label[lb]["name"])):
            built[section_of(label)].rows.append(by_label[label])
        result = []
        for slug, b in built.items():
            if not b.rows:
                continue
            result.append(
                {
                    "name": b.section.name,
                    "app_label": slug,
                    "app_url": reverse(f"{self.name}:section", kwargs={"slug": slug}),
                    "has_module_perms": True,
                    "models": b.rows,
                    "description": b.section.description,
                    "collapsed": b.section.collapsed,
                }
            )
        return result

    def _link_row(self, request, link: Link) -> dict[str, Any] | None:
        if link.model:
            app_label, model_name = link.model.split(".")
            if not request.user.has_perm(f"{app_label}.view_{model_name.lower()}"):
                return None
        if link.perm and not request.user.has_perm(link.perm):
            return None
        try:
            url = reverse(link.url_name, current_app=self.name)
        except NoReverseMatch:  # a store-only page, on the platform's admin
            return None
        return {
            "name": link.name,
            "object_name": link.dom_id or link.name.split(" ")[0],
            "admin_url": url + link.query,
            "add_url": None,
            "view_only": True,
            "is_link": True,
            "dom_id": link.dom_id,
            "perms": {"view": True},
        }

    def section_index(self, request, slug: str):
        found = [s for s in self.sections(request) if s["app_label"] == slug]
        if not found:
            raise Http404("No such section, or nothing in it you may see.")
        context = {
            **self.each_context(request),
            "title": found[0]["name"],
            "subtitle": None,
            "app_list": found,
            "app_label": slug,
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/app_index.html", context)

    def index(self, request, extra_context=None):
        # Imported here: this class is built while the admin autodiscovers the apps' admin
        # modules, and the home's reads (payments, offers, analytics) need not load with it.
        from storefront.admin_home import home_context

        return super().index(request, {**home_context(request), **(extra_context or {})})
