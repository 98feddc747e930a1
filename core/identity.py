"""One normalisation per kind of identity, used wherever an identity is compared for security.

Two spellings that reach the same account, buyer or store must be the same key everywhere a
limit, a cap, an ownership check or an uniqueness check looks them up; otherwise a look-alike
spelling (`ｏｗｎｅｒ`, `ℴwner`, `BUYER@ｅxample.com`, `Demo.Example.com.`) gets a fresh budget
or a second record. Django's authentication normalises usernames with NFKC
(`AbstractBaseUser.normalize_username`, applied by the login form's `UsernameField`) and then
looks the user up exactly; these helpers start from the same NFKC form.

- `username_for_login`: exactly what Django authenticates (NFKC), for looking the user up.
- `username_key`: the key a *limit* counts under: NFKC, case-folded, NFKC again (Unicode's
  NFKC_Casefold), so every spelling that can log in as one user, and a few more, share it.
- `email_key`: a buyer's address as stored and compared (NFKC, trimmed, lower-case).
- `domain_key`: a host name as routed and stored (NFKC, lower-case, no trailing dot, IDNA
  A-label for non-ASCII labels).

None of them accepts NUL or a lone surrogate silently: they come back unchanged in the key
(and never match a stored, validated identity).
"""

from __future__ import annotations

import unicodedata


def _nfkc(value: str) -> str:
    try:
        return unicodedata.normalize("NFKC", value)
    except (TypeError, ValueError):  # pragma: no cover - str input always normalises
        return value


def _stable(step, value: str) -> str:
    """Apply `step` until the text stops changing (NFKC can expose spaces to strip, case
    folding can make text that NFKC changes again), so every key is its own key."""
    for _ in range(4):
        after = step(value)
        if after == value:
            break
        value = after
    return value


def username_for_login(value: str) -> str:
    """The username Django's login form hands to `authenticate` (NFKC, as
    `AbstractBaseUser.normalize_username`)."""
    return _nfkc(value or "")


def username_key(value: str) -> str:
    """The case- and compatibility-insensitive key of a username, for lockouts and limits."""
    return _stable(lambda v: _nfkc(_nfkc(v).strip().casefold()), value or "")


def email_key(value: str) -> str:
    """A buyer's e-mail address as stored and compared: NFKC, trimmed, lower-case.

    Django's EmailValidator allows non-ASCII domain labels, and mail to a full-width domain
    label reaches the ASCII one (IDNA maps it), so both spellings are one buyer.
    """
    return _stable(lambda v: _nfkc(v.strip()).strip().lower(), value or "")


def domain_key(value: str) -> str:
    """A host name as routed and stored: NFKC, lower-case, without the trailing dot, with
    non-ASCII labels as IDNA A-labels (what a browser sends in Host)."""
    host = _stable(lambda v: _nfkc(v.strip()).strip().lower().removesuffix("."), value or "")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host  # not a valid host name: the caller's validation refuses it


def email_digest(value: str) -> str:
    """A keyed digest of a buyer's address (HMAC-SHA256 of `email_key` under a key derived
    from SECRET_KEY): what lists that must outlive an erasure keep (mail suppressions, the
    privacy requests' log) so they can recognise the address without holding it."""
    import hashlib
    import hmac

    from django.conf import settings

    key = hashlib.sha256(b"core.identity.email_digest:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, email_key(value).encode("utf-8"), hashlib.sha256).hexdigest()
