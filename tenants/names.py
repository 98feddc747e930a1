"""Store names on the platform's domain: one validator for sign-up and `create_creator`.

A store's subdomain (its slug) is a lowercase DNS label: a-z, 0-9 and hyphens, not starting
or ending with a hyphen, at most 63 characters. Names the platform needs for itself are
refused: infrastructure hosts (www, mail, …), the first segment of every path the platform's
own domain serves (admin, signup, webhooks, … read from `config.urls_public`, so a new page
reserves its name without anyone remembering to), and names PostgreSQL keeps for itself.

Self-serve sign-up asks for at least three characters; operators may assign shorter names
(`create_creator t1 …`), which is the only difference between the two callers.
"""

from __future__ import annotations

import functools
import re

LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MAX_LENGTH = 63
SIGNUP_MIN_LENGTH = 3
OPERATOR_MIN_LENGTH = 2

RESERVED = frozenset(
    {
        "www",
        "admin",
        "api",
        "mail",
        "static",
        "media",
        "app",
        "help",
        "support",
        "status",
        # The platform's own tenant and schema names PostgreSQL or we use.
        "public",
        "platform",
        "information-schema",
    }
)


@functools.lru_cache(maxsize=1)
def platform_path_names() -> frozenset[str]:
    """The first literal path segment of every URL the platform's own domain serves."""
    from django.conf import settings
    from django.urls import get_resolver

    names: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            text = prefix + str(pattern.pattern).lstrip("^")
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, text)
                continue
            first = text.split("/", 1)[0]
            if first and "<" not in first and re.fullmatch(r"[a-z0-9-]+", first):
                names.add(first)

    walk(get_resolver(settings.PUBLIC_SCHEMA_URLCONF).url_patterns, "")
    return frozenset(names)


def is_reserved(label: str) -> bool:
    return label in RESERVED or label in platform_path_names() or label.startswith("pg-")


def label_errors(
    value: str, *, what: str = "subdomain", min_length: int = SIGNUP_MIN_LENGTH
) -> list[str]:
    """What is wrong with `value` as a store's subdomain, without looking at the database."""
    value = value or ""
    if "\x00" in value:
        return [f"{what} must not contain NUL characters"]
    if not (min_length <= len(value) <= MAX_LENGTH) or not LABEL_RE.fullmatch(value):
        return [
            f"{what} {value!r} must be {min_length}-{MAX_LENGTH} characters: lower-case "
            "letters, digits and hyphens, not starting or ending with a hyphen"
        ]
    if is_reserved(value):
        return [f"{what} {value!r} is reserved"]
    return []
