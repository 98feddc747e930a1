"""The store admin's breadcrumbs name the creator's section (Sell, Money, …) a model is in,
not its Django app (storefront/admin_site.py)."""

from django import template
from django.urls import NoReverseMatch, reverse

from storefront.admin_site import SECTIONS, section_of

register = template.Library()
_NAMES = {s.slug: s.name for s in SECTIONS}


@register.simple_tag
def admin_section(opts) -> dict[str, str]:
    """{"name", "url"} of the section `opts`'s model is listed in."""
    slug = section_of(opts.label)
    try:
        url = reverse("admin:section", kwargs={"slug": slug})
    except NoReverseMatch:
        url = ""
    return {"name": _NAMES.get(slug, ""), "url": url}
