from django import template

from core.money import Money

register = template.Library()


@register.simple_tag
def money(amount: int, currency: str) -> str:
    return Money(int(amount), currency).format()


@register.filter
def get_item(mapping, key):
    return mapping.get(key, "")
