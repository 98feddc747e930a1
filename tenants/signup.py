"""Self-serve sign-up on the platform's domain, email verification and the login hand-off.

The path, and why it is shaped so:

1. `signup_submit` checks everything first (subdomain via `tenants.names`, the same validator
   `create_creator` uses; email; password through Django's validators), then either provisions
   the store through `tenants.services.creator_create` (a spare schema from the pool when one
   waits) and mails a verification link, or, when the email already owns a store, makes nothing
   and mails that owner "someone tried to sign up with your email". The page answers the same
   in both cases, and both send one mail: the form never tells whether an address has a store.
   That is also why the creator enters their store from the mailed link and not straight from
   the form: landing in a new admin right after submitting would reveal the difference.
2. The link opens a page on the platform's domain whose button (a POST, so mail scanners that
   fetch links verify nothing) marks the email verified and makes a `LoginHandoff`: a signed
   (creator, nonce) that the store's own domain accepts once, within `HANDOFF_SECONDS`, and
   only for that store (`handoff_consume`). The creator lands logged into the store's admin,
   on the getting-started checklist.

An unverified store takes no payment (`payments.connect.payments_block_reason`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from core.boundary import db_id
from tenants.models import Creator, Domain, LoginHandoff
from tenants.names import SIGNUP_MIN_LENGTH, label_errors
from tenants.provisioning import template_ensure
from tenants.routing import _routing_changed
from tenants.services import ProvisioningError, creator_create

logger = logging.getLogger(__name__)

STAMP_SALT = "tenants.signup.form-stamp"
VERIFY_SALT = "tenants.signup.verify-email"
HANDOFF_SALT = "tenants.signup.login-handoff"
HANDOFF_SECONDS = 120
VERIFY_MAX_AGE = 3 * 24 * 3600
STAMP_MAX_AGE = 24 * 3600


class SignupError(ValueError):
    """Bad input for a sign-up; nothing was made. `errors` maps form fields to messages."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class HandoffRefused(ValueError):
    """The hand-off link is forged, expired, used, or for another store."""


# --- bot resistance: a signed render time and a honeypot -----------------------------------


def signup_stamp(*, now: float | None = None) -> str:
    """Signed render time of the form; the POST must come back at least a few seconds later."""
    return signing.dumps(int((time.time() if now is None else now) * 1000), salt=STAMP_SALT)


def signup_stamp_error(stamp: str, *, now: float | None = None) -> str | None:
    """Why a form stamp is not acceptable (missing, forged, too old, filled too fast), or None."""
    try:
        rendered_ms = int(signing.loads(stamp or "", salt=STAMP_SALT, max_age=STAMP_MAX_AGE))
    except (signing.BadSignature, TypeError, ValueError):
        return "The form expired. Please fill it in again."
    waited = (time.time() if now is None else now) - rendered_ms / 1000
    if waited < float(getattr(settings, "SIGNUP_MIN_FILL_SECONDS", 3.0)):
        return "That was quick! Please check the form, then send it again."
    return None


# --- sign-up ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupResult:
    email: str
    created: Creator | None  # None when the email already had a store (never shown to the user)


def _normalized_email(email: str) -> str:
    return (email or "").strip().lower()


def store_host(subdomain: str) -> str:
    return f"{subdomain}.{settings.PLATFORM_DOMAIN}".lower()


def signup_check(*, email: str, password: str, store_name: str, subdomain: str) -> dict[str, str]:
    """Every reason the input cannot open a store, by field; {} when it can. Writes nothing.

    A taken email is not a reason: it must look like success (see the module docstring).
    """
    errors: dict[str, str] = {}
    values = {
        "email": email,
        "password": password,
        "store_name": store_name,
        "subdomain": subdomain,
    }
    for field, value in values.items():
        if "\x00" in (value or ""):
            errors[field] = "This field must not contain NUL characters."
    email = _normalized_email(email)
    if "email" not in errors:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = "Enter a valid email address."
    if "store_name" not in errors:
        name = (store_name or "").strip()
        if not name:
            errors["store_name"] = "Give your store a name."
        elif len(name) > 120:
            errors["store_name"] = "The store name can be at most 120 characters."
    if "subdomain" not in errors:
        problems = label_errors(subdomain or "", what="subdomain", min_length=SIGNUP_MIN_LENGTH)
        if problems:
            errors["subdomain"] = problems[0][0].upper() + problems[0][1:] + "."
        else:
            with schema_context(get_public_schema_name()):
                taken = (
                    Creator.objects.filter(slug=subdomain).exists()
                    or Domain.objects.filter(domain=store_host(subdomain)).exists()
                )
            if taken:
                errors["subdomain"] = f"The subdomain {subdomain!r} is taken. Try another."
    if "password" not in errors:
        user = get_user_model()(username="owner", email=email)
        try:
            validate_password(password or "", user=user)
        except ValidationError as exc:
            errors["password"] = " ".join(exc.messages)
    return errors


def _email_lock(cursor, email: str) -> None:
    """Serialize sign-ups of one address: two at once must not both find it free."""
    key = zlib.crc32(b"tenants.signup:" + hashlib.sha256(email.encode()).digest())
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def signup_submit(
    *, email: str, password: str, store_name: str, subdomain: str, platform_url: str
) -> SignupResult:
    """Open a store (unverified) and mail the verification link; or, if the email already owns a
    store, make nothing and mail that owner a warning. Raises SignupError for bad input."""
    errors = signup_check(
        email=email, password=password, store_name=store_name, subdomain=subdomain
    )
    if errors:
        raise SignupError(errors)
    email = _normalized_email(email)
    created: Creator | None = None
    with schema_context(get_public_schema_name()):
        template_ensure()  # outside the transaction: a missing template is built and committed
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    _email_lock(cursor, email)
                if not Creator.objects.filter(owner_email__iexact=email).exists():
                    created = creator_create(
                        slug=subdomain,
                        display_name=store_name.strip(),
                        domain=store_host(subdomain),
                        owner_email=email,
                        password=password,
                        self_serve=True,
                        slug_min_length=SIGNUP_MIN_LENGTH,
                    ).creator
        except (ProvisioningError, IntegrityError) as exc:
            # A concurrent sign-up took the subdomain between the check and the insert.
            logger.info("signup: %s refused at provisioning: %s", subdomain, exc)
            raise SignupError(
                {"subdomain": f"The subdomain {subdomain!r} is taken. Try another."}
            ) from exc
    if created is not None:
        _mail_verify(created, platform_url=platform_url)
    else:
        _mail_already_registered(email, platform_url=platform_url)
    return SignupResult(email=email, created=created)


def _send(subject: str, body: str, to: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    except Exception:  # the page answers the same; the log says the mail did not go
        logger.exception("signup: could not send %r", subject)


def verify_token(creator: Creator) -> str:
    return signing.dumps({"c": creator.pk, "e": creator.owner_email}, salt=VERIFY_SALT)


def _mail_verify(creator: Creator, *, platform_url: str) -> None:
    link = f"{platform_url.rstrip('/')}/signup/verify/{verify_token(creator)}/"
    _send(
        f"Confirm your email to open {creator.display_name}",
        f"Welcome! Confirm your email address to open your store {creator.display_name} "
        f"({store_host(creator.slug)}):\n\n{link}\n\nThe link works for three days. If you did "
        "not sign up, ignore this mail: the store takes no payment until it is confirmed.\n",
        creator.owner_email,
    )


def _mail_already_registered(email: str, *, platform_url: str) -> None:
    _send(
        "Someone tried to sign up with your email",
        "Someone (perhaps you) tried to open a new store with this email address, which already "
        "has a store with us. Nothing was changed and no store was made.\n\nIf it was you, sign "
        "in to your store's admin instead. If not, you can ignore this mail.\n\n"
        f"{platform_url.rstrip('/')}/\n",
        email,
    )


# --- verification and the hand-off -----------------------------------------------------------


def signup_verify_read(*, token: str) -> Creator:
    """The store a verification link is for; SignupError if it is forged, expired or stale."""
    try:
        data = signing.loads(token or "", salt=VERIFY_SALT, max_age=VERIFY_MAX_AGE)
        creator_id, email = int(data["c"]), str(data["e"])
        if db_id(creator_id) is None:
            raise ValueError(creator_id)
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise SignupError({"token": "This confirmation link is invalid or has expired."}) from exc
    with schema_context(get_public_schema_name()):
        creator = Creator.objects.filter(pk=creator_id, owner_email=email).first()
    if creator is None:
        raise SignupError({"token": "This confirmation link is invalid or has expired."})
    return creator


def signup_verify(*, token: str) -> tuple[Creator, str | None]:
    """Mark the email verified; returns the store and a hand-off token the first time only."""
    creator = signup_verify_read(token=token)
    with schema_context(get_public_schema_name()):
        first = Creator.objects.filter(pk=creator.pk, email_verified_at__isnull=True).update(
            email_verified_at=timezone.now()
        )
        if first:
            # A queryset update sends no post_save: drop this process's routing cache now
            # (other processes hear the trigger's NOTIFY), so pages see the verified store.
            _routing_changed(sender=Creator)
        creator.refresh_from_db()
    if not first:
        return creator, None
    return creator, handoff_create(creator=creator)


def handoff_create(*, creator: Creator) -> str:
    nonce = secrets.token_urlsafe(24)
    with schema_context(get_public_schema_name()):
        LoginHandoff.objects.create(
            creator=creator,
            nonce=nonce,
            expires_at=timezone.now() + timedelta(seconds=HANDOFF_SECONDS),
        )
    return signing.dumps({"c": creator.pk, "n": nonce}, salt=HANDOFF_SALT)


def handoff_consume(*, token: str, creator: Creator) -> None:
    """Spend a hand-off token on `creator`'s domain; HandoffRefused unless it is this store's,
    unused and fresh. Single-use holds under concurrency: one UPDATE decides."""
    try:
        data = signing.loads(token or "", salt=HANDOFF_SALT, max_age=HANDOFF_SECONDS)
        creator_id, nonce = int(data["c"]), str(data["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise HandoffRefused("This sign-in link is invalid or has expired.") from exc
    if creator_id != creator.pk:
        raise HandoffRefused("This sign-in link is for another store.")
    spent = LoginHandoff.objects.filter(
        creator_id=creator.pk, nonce=nonce, used_at__isnull=True, expires_at__gt=timezone.now()
    ).update(used_at=timezone.now())
    if spent != 1:
        raise HandoffRefused("This sign-in link has been used or has expired.")


def store_preview_mark(*, creator: Creator) -> None:
    with schema_context(get_public_schema_name()):
        Creator.objects.filter(pk=creator.pk, previewed_at__isnull=True).update(
            previewed_at=timezone.now()
        )
