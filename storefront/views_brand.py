"""The store's brand: its stylesheet and pictures for buyers, and the admin page where the
creator edits a draft, previews it at phone and desktop width and publishes it.

Preview decision: the preview shows the *saved draft* (not unsaved form values): uploads are
resized once when the draft is saved, the preview frames are ordinary pages the creator can
reload or open in a tab, and what is previewed is exactly what "Publish" copies. Product
content (pictures, benefits, testimonials) has its own draft state already: a product in
status Draft is previewable here and invisible to buyers until it is made Active.
"""

from __future__ import annotations

import mimetypes
import re
from types import SimpleNamespace

from django import forms
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from audit.services import audit_diff, audit_record, model_snapshot
from core.permissions import staff_permission_required
from core.security import framed_by_self, frames_self
from storefront import branding, selectors
from storefront.countries import COUNTRIES
from storefront.forms import CheckoutForm
from storefront.media import ImageRefused, image_check, image_store, is_variant_name
from storefront.models import Product, StoreBrand, StoreSettings
from storefront.pricing import Jurisdiction, offer_line_price
from storefront.services.checkout import CheckoutError, jurisdiction_parse

YEAR = 365 * 24 * 3600
_CSS_NAME = re.compile(r"^([0-9a-f]{6})-([a-z]+)-(light|dark)$")


@require_GET
def brand_stylesheet(request, name: str):
    """`/brand/<hex>-<typeface>-<scheme>.css`: the URL names the content, so it never changes."""
    match = _CSS_NAME.match(name)
    if not match or match.group(2) not in branding.FONTS:
        raise Http404("No such stylesheet.")
    css = branding.brand_css(
        accent=f"#{match.group(1)}", typeface=match.group(2), scheme=match.group(3)
    )
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


@require_GET
def media_image(request, name: str):
    """A resized picture from this store's own storage folder (the tenant's, by the storage
    backend). Only names storefront.media writes are served: never a deliverable."""
    if not is_variant_name(name):
        raise Http404("No such image.")
    path = f"img/{name}"
    try:
        handle = default_storage.open(path, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("No such image.") from exc
    response = FileResponse(handle, content_type=mimetypes.guess_type(name)[0] or "image/avif")
    response["Cache-Control"] = f"public, max-age={YEAR}, immutable"  # named by content hash
    return response


# --- the admin page --------------------------------------------------------------------------


class ColorInput(forms.TextInput):
    input_type = "color"


class BrandForm(forms.Form):
    accent_color = forms.CharField(
        label="Accent colour",
        widget=ColorInput,
        help_text="Links, buttons and focus rings. It must read clearly (WCAG 2.2 AA).",
    )
    scheme = forms.ChoiceField(
        label="Light or dark", choices=StoreBrand.Scheme.choices, widget=forms.RadioSelect
    )
    typeface = forms.ChoiceField(
        label="Typeface", choices=StoreBrand.Typeface.choices, widget=forms.RadioSelect
    )
    logo = forms.FileField(
        required=False,
        label="Logo",
        help_text="PNG, JPEG, WebP or AVIF, at most 8 MB and 40 megapixels; no SVG.",
    )
    logo_alt = forms.CharField(
        required=False,
        max_length=120,
        label="Logo text",
        help_text="What the logo says, for people who cannot see it (required with a logo).",
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the logo")
    creator_name = forms.CharField(
        required=False, max_length=100, label="Your name", help_text="Shown at checkout."
    )
    creator_photo = forms.FileField(
        required=False, label="Your photo", help_text="Optional; shown small at checkout."
    )
    remove_photo = forms.BooleanField(required=False, label="Remove the photo")

    def __init__(self, *args, draft: StoreBrand, **kwargs):
        super().__init__(*args, **kwargs)
        self.draft = draft
        self.checked: dict[str, object] = {}

    def clean_accent_color(self) -> str:
        return (self.cleaned_data.get("accent_color") or "").strip().lower()

    def _image(self, field: str):
        upload = self.cleaned_data.get(field)
        if upload:
            try:
                self.checked[field] = image_check(upload)
            except ImageRefused as exc:
                self.add_error(field, str(exc))

    def clean(self):
        data = super().clean()
        accent, scheme = data.get("accent_color"), data.get("scheme")
        if accent is not None and scheme:
            for problem in branding.accent_problems(accent, scheme):
                self.add_error("accent_color", problem)
        self._image("logo")
        self._image("creator_photo")
        has_logo = (bool(self.draft.logo) and not data.get("remove_logo")) or bool(data.get("logo"))
        if has_logo and not (data.get("logo_alt") or "").strip():
            self.add_error("logo_alt", "Say what the logo shows (usually the store's name).")
        return data

    def values(self) -> dict:
        """The draft's new fields; the pictures are written only now, after every check."""
        data = self.cleaned_data
        values = {
            "accent_color": data["accent_color"],
            "scheme": data["scheme"],
            "typeface": data["typeface"],
            "logo_alt": data["logo_alt"].strip(),
            "creator_name": data["creator_name"].strip(),
        }
        if data.get("remove_logo"):
            values["logo"], values["logo_alt"] = {}, ""
        if "logo" in self.checked:
            values["logo"] = image_store(self.checked["logo"], widths=(160, 320, 640))
        if data.get("remove_photo"):
            values["creator_photo"] = {}
        if "creator_photo" in self.checked:
            values["creator_photo"] = image_store(self.checked["creator_photo"], widths=(128, 256))
        return values


PREVIEW_PAGES = {
    "index": "Store page",
    "product": "Product page",
    "checkout": "Checkout",
    "upsell": "Upsell (the first offer of this product)",
}


@staff_permission_required("storefront.change_storesettings")
@frames_self
@require_http_methods(["GET", "POST"])
def brand_page(request):
    draft = branding.brand_draft_get()
    notice = error = ""
    if request.method == "POST" and request.POST.get("action") == "publish":
        try:
            branding.brand_publish(actor=request)
        except ValueError as exc:
            error = f"Not published: {exc}"
        else:
            return HttpResponseRedirect(reverse("store-brand") + "?published=1")
        form = _form_for(draft)
    elif request.method == "POST":
        form = BrandForm(request.POST, request.FILES, draft=draft)
        if form.is_valid():
            before = model_snapshot(draft)
            for name, value in form.values().items():
                setattr(draft, name, value)
            draft.save()
            changes = audit_diff(before, model_snapshot(draft))
            changes.pop("updated_at", None)
            audit_record(
                request_or_actor=request,
                action="storefront.brand.draft",
                obj=draft,
                changes=changes,
                summary="Saved the brand draft",
            )
            return HttpResponseRedirect(reverse("store-brand") + "?saved=1")
        error = "Not saved: correct the fields marked below."
    else:
        form = _form_for(draft)
    if request.GET.get("saved"):
        notice = "Draft saved. Check the previews below, then publish."
    elif request.GET.get("published"):
        notice = "Published: buyers see this brand from their next page."
    products = list(Product.objects.order_by("ladder_position", "pk"))
    page = request.GET.get("page") if request.GET.get("page") in PREVIEW_PAGES else "product"
    slug = request.GET.get("product") or (products[0].slug if products else "")
    store = StoreSettings.current()
    country = request.GET.get("country", "")
    if country not in COUNTRIES:
        country = store.tax_country if store.tax_country in COUNTRIES else "US"
    query = f"?country={country}" + (f"&product={slug}" if slug else "")
    preview_url = reverse("store-brand-preview", args=[page]) + query
    published = StoreBrand.objects.filter(stage="published").first()
    return render(
        request,
        "admin/storefront/brand.html",
        {
            "form": form,
            "draft": draft,
            "draft_brand": branding.brand_from_row(draft),
            "unpublished": published is None
            or branding.brand_from_row(published) != branding.brand_from_row(draft),
            "notice": notice,
            "error": error,
            "products": products,
            "pages": PREVIEW_PAGES,
            "page": page,
            "slug": slug,
            "countries": COUNTRIES,
            "country": country,
            "preview_url": preview_url,
            "title": "Brand and preview",
            "site_header": "Store admin",
            "has_permission": True,
        },
    )


def _form_for(draft: StoreBrand) -> BrandForm:
    return BrandForm(
        initial={
            "accent_color": draft.accent_color,
            "scheme": draft.scheme,
            "typeface": draft.typeface,
            "logo_alt": draft.logo_alt,
            "creator_name": draft.creator_name,
        },
        draft=draft,
    )


@staff_permission_required("storefront.change_storesettings")
@framed_by_self
@require_GET
def brand_preview(request, page: str):
    """A buyer page rendered with the draft brand, for the admin's phone and desktop frames.
    Nothing is recorded (no page view, no checkout started); drafts products are shown."""
    if page not in PREVIEW_PAGES:
        raise Http404("No such page.")
    request.brand_preview = branding.brand_from_row(branding.brand_draft_get())
    store = StoreSettings.current()
    try:
        place = preview_place(request, store)
    except CheckoutError as exc:
        return render(
            request,
            "storefront/error.html",
            {"title": "No such place to preview", "message": exc.message},
            status=400,
        )
    if page == "index":
        return render(
            request,
            "storefront/index.html",
            {
                "products": selectors.product_list_active(),
                "creator": request.tenant,
                "store": store,
            },
        )
    product = Product.objects.filter(slug=request.GET.get("product", "")).first()
    if product is None:
        return render(
            request,
            "storefront/error.html",
            {"title": "No product to preview", "message": "Add a product first."},
            status=404,
        )
    if page == "product":
        return render(
            request,
            "storefront/product.html",
            {"product": product, "creator": request.tenant, "store": store},
        )
    if page == "checkout":
        from storefront.views import _checkout_context

        context = _checkout_context(request, product, CheckoutForm(), add_bump=False, place=place)
        context["preview"] = True
        return render(request, "storefront/checkout.html", context)
    return _upsell_preview(request, product, store, place)


def preview_place(request, store: StoreSettings) -> Jurisdiction:
    """The sample buyer's location the checkout and upsell previews are taxed for: the
    `country` (and `region`) asked for, else the store's own tax country, else the checkout's
    default. The live pages tax each buyer for the place they gave at checkout."""
    default = store.tax_country if store.tax_country in COUNTRIES else "US"
    return jurisdiction_parse(
        country=request.GET.get("country") or default, region=request.GET.get("region", "")
    )


def place_label(place: Jurisdiction) -> str:
    name = COUNTRIES.get(place.country, place.country)
    return f"{name} ({place.region})" if place.region else name


def _upsell_preview(request, product: Product, store: StoreSettings, place: Jurisdiction):
    from offers.models import Offer, OfferKind

    offer = (
        Offer.objects.filter(trigger_product=product, kind=OfferKind.UPSELL)
        .select_related("product")
        .order_by("pk")
        .first()
    )
    if offer is None:
        return render(
            request,
            "storefront/error.html",
            {
                "title": "No upsell to preview",
                "message": f"{product.name} has no upsell offer yet.",
            },
            status=404,
        )
    # Priced as the live page prices it (offer_line_price, as the decision row is made in
    # storefront.services.upsell.present), for the sample buyer's place instead of an order's.
    line, tax_name = offer_line_price(
        kind=OfferKind.UPSELL, offer=offer, jurisdiction=place, store=store
    )
    decision = SimpleNamespace(
        kind="upsell",
        net_amount=line.net.amount,
        tax_amount=line.tax.amount,
        total_amount=line.total.amount,
        currency=line.total.currency,
        tax_name=tax_name,
        tax_rate=line.rate,
        tax_inclusive=line.inclusive,
        offer=offer,
    )
    return render(
        request,
        "storefront/upsell.html",
        {
            "creator": request.tenant,
            "order": SimpleNamespace(token="preview"),
            "step": SimpleNamespace(stage="offer", token="preview", client_secret=""),
            "decision": decision,
            "offer": offer,
            "thanks_url": "#",
            "primary_settled": True,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "stripe_publishable_key": "",
            "store": store,
            "preview": True,
            "preview_place": place_label(place),
        },
    )
