"""Abuse limits on Redis: sliding-window rate limits per tenant, and login lockout.

Every key carries the tenant's schema, the scope ("checkout", "admin_login", …) and a hashed
identity (address, order, account), so one tenant's flood never spends another's budget and
no raw address or e-mail sits in Redis. Limits are sliding windows (a sorted set of hit
times per key, trimmed and counted in one Lua script), so "10/m" means at most ten in any
sixty seconds, with an exact Retry-After.

If Redis is unreachable the limiter lets requests through and logs a warning: an outage of the
cache must not take checkout down with it.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.identity import username_for_login, username_key

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")

# KEYS: one per limit. ARGV: now_ms, mode, member, then (limit, window_ms) per key.
# mode "hit": admit only if every key is under its limit, then record on all of them.
# mode "peek": only report. mode "add": record unconditionally (failures for lockouts).
# Returns {admitted, retry_after_ms}.
_SCRIPT = """
local now = tonumber(ARGV[1])
local mode = ARGV[2]
local member = ARGV[3]
local retry = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + i * 2])
  local window = tonumber(ARGV[3 + i * 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local wait = tonumber(oldest[2]) + window - now
    if wait > retry then retry = wait end
  end
end
if mode == 'add' or (mode == 'hit' and retry == 0) then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, tonumber(ARGV[3 + i * 2]))
  end
end
if retry > 0 then return {0, retry} end
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    window_seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'10/m', '100/h', '5/10m' (five per ten minutes), '1000/d'."""
        match = _RATE_RE.match(text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"bad rate {text!r}: expected like '10/m' or '5/15m'")
        count, multiplier, unit = match.groups()
        return cls(int(count), int(multiplier or 1) * _UNITS[unit])


@dataclass(frozen=True, slots=True)
class Limit:
    """One budget: `rate` for `identity` along `dimension` ("address", "order", "account")."""

    dimension: str
    identity: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds, rounded up; 0 when allowed
    scope: str = ""


def _tenant_schema() -> str:
    return getattr(connection, "schema_name", None) or "public"


def ratelimit_key(*, scope: str, dimension: str, identity: str, schema: str | None = None) -> str:
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"ratelimit:{schema or _tenant_schema()}:{scope}:{dimension}:{digest}"


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _clock_ms() -> int:
    return int(time.time() * 1000)


def _run(scope: str, limits: Iterable[Limit], mode: str) -> Decision:
    limits = [lim for lim in limits if lim.identity]
    if not limits:
        return Decision(True, 0, scope)
    keys = [
        ratelimit_key(scope=scope, dimension=lim.dimension, identity=lim.identity) for lim in limits
    ]
    argv: list[object] = [_clock_ms(), mode, f"{_clock_ms()}-{secrets.token_hex(6)}"]
    for lim in limits:
        argv += [lim.rate.limit, lim.rate.window_seconds * 1000]
    try:
        admitted, retry_ms = _redis().eval(_SCRIPT, len(keys), *keys, *argv)
    except Exception as exc:  # Redis down: fail open, loudly
        logger.warning("ratelimit: Redis unavailable, not limiting %s: %s", scope, exc)
        return Decision(True, 0, scope)
    if admitted:
        return Decision(True, 0, scope)
    return Decision(False, max(1, math.ceil(int(retry_ms) / 1000)), scope)


def ratelimit_hit(*, scope: str, limits: Iterable[Limit]) -> Decision:
    """Spend one unit of every budget, or none if any is exhausted (then say how long to wait)."""
    return _run(scope, limits, "hit")


def ratelimit_peek(*, scope: str, limits: Iterable[Limit]) -> Decision:
    """Would a request be refused now? Spends nothing."""
    return _run(scope, limits, "peek")


def ratelimit_record(*, scope: str, limits: Iterable[Limit]) -> Decision:
    """Record an occurrence on every budget regardless of limits (e.g. a failed login)."""
    return _run(scope, limits, "add")


def ratelimit_reset(*, scope: str, dimension: str, identity: str) -> None:
    try:
        _redis().delete(ratelimit_key(scope=scope, dimension=dimension, identity=identity))
    except Exception as exc:
        logger.warning("ratelimit: Redis unavailable, could not reset %s: %s", scope, exc)


# --- Who is asking --------------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP, trusting X-Forwarded-For only as far as our own proxies.

    `TRUSTED_PROXY_COUNT` (production settings) is how many proxies in front of us append to
    X-Forwarded-For; 0 means REMOTE_ADDR is the client and the header is ignored (anyone
    can send it).
    """
    address = request.META.get("REMOTE_ADDR", "") or ""
    trusted = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    if trusted > 0:
        hops = [
            h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()
        ]
        if len(hops) >= trusted:
            address = hops[-trusted]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def client_address(request: HttpRequest) -> str:
    """The rate-limit identity of the client's address.

    IPv6 clients are bucketed by /64, the block one subscriber usually gets, so rotating
    addresses within it does not buy a fresh budget.
    """
    address = client_ip(request)
    if address is None:
        return request.META.get("REMOTE_ADDR", "") or "unknown"
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def too_many_requests(request: HttpRequest, decision: Decision, message: str = "") -> HttpResponse:
    text = message or f"Too many requests. Try again in {decision.retry_after} seconds."
    wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
    if wants_json:
        response: HttpResponse = JsonResponse(
            {"error": "rate_limited", "detail": text, "retry_after": decision.retry_after},
            status=429,
        )
    else:
        response = HttpResponse(text, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(decision.retry_after)
    return response


IdentityFrom = str | Callable[..., str | None] | None


def _identity(source: IdentityFrom, request: HttpRequest, args: tuple, kwargs: dict) -> str | None:
    if source is None:
        return None
    if callable(source):
        value = source(request, *args, **kwargs)
    else:
        value = kwargs.get(source) or request.POST.get(source) or request.GET.get(source)
    return str(value) if value not in (None, "") else None


def _account(request: HttpRequest, *args, **kwargs) -> str | None:
    user = getattr(request, "user", None)
    return f"user:{user.pk}" if user is not None and user.is_authenticated else None


def rate_limit(
    scope: str,
    *,
    per_address: str | None = None,
    per_order: str | None = None,
    per_account: str | None = None,
    order_from: IdentityFrom = "order_id",
    account_from: IdentityFrom = _account,
    methods: Iterable[str] | None = None,
) -> Callable:
    """Limit a view per tenant + scope + address / order / account; answer 429 + Retry-After.

        @rate_limit("upsell_accept", per_address="20/m", per_order="5/m", order_from="token",
                    methods=["POST"])
        def upsell_accept(request, token): ...

    `order_from` / `account_from` name a URL kwarg or POST/GET field, or are a callable
    `(request, *args, **kwargs) -> str | None`. A budget whose identity is missing is skipped.
    A request spends a unit of every budget or of none.
    """
    rates = {
        "address": Rate.parse(per_address) if per_address else None,
        "order": Rate.parse(per_order) if per_order else None,
        "account": Rate.parse(per_account) if per_account else None,
    }
    if not any(rates.values()):
        raise ValueError("rate_limit needs at least one of per_address, per_order, per_account")
    only = {m.upper() for m in methods} if methods else None

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if only is None or request.method in only:
                identities = {
                    "address": client_address(request),
                    "order": _identity(order_from, request, args, kwargs),
                    "account": _identity(account_from, request, args, kwargs),
                }
                limits = [
                    Limit(dim, identities[dim], rate)
                    for dim, rate in rates.items()
                    if rate and identities[dim]
                ]
                decision = ratelimit_hit(scope=scope, limits=limits)
                if not decision.allowed:
                    logger.warning(
                        "ratelimit: %s refused for %s on %s (retry in %ss)",
                        scope,
                        identities["address"],
                        _tenant_schema(),
                        decision.retry_after,
                    )
                    return too_many_requests(request, decision)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# --- Login lockout --------------------------------------------------------------------------

LOGIN_SCOPE = "login_failures"
# Five wrong passwords for one account, or twenty from one address, within fifteen minutes
# lock further attempts until the oldest of them is fifteen minutes old.
LOGIN_ACCOUNT_RATE = Rate(5, 15 * 60)
LOGIN_ADDRESS_RATE = Rate(20, 15 * 60)


def login_account_identity(username: str | None) -> str | None:
    """The key a login attempt for `username` counts under: the account it would log in to.

    Django authenticates the NFKC form of what was typed (the login form's UsernameField),
    so `ｏｗｎｅｒ`, `owｎer` and `ℴwner` are all `owner`. The lockout resolves the name
    the same way and keys by the user's id; a name that is no user is keyed by its
    case-folded NFKC form (core.identity.username_key), so look-alikes of a non-existent
    name share one budget too.
    """
    if not username:
        return None
    user_pk = _login_user_pk(username)
    if user_pk is not None:
        return f"user:{user_pk}"
    return f"name:{username_key(username)}"


def _login_user_pk(username: str) -> object | None:
    from django.contrib.auth import get_user_model

    name = username_for_login(username)
    user_model = get_user_model()
    field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    limit = getattr(field, "max_length", None) or 254
    # What the form would refuse never reaches the database (PostgreSQL text has no NUL).
    if not name or len(name) > limit or "\x00" in name:
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return None
    try:
        return user_model._default_manager.get_by_natural_key(name).pk
    except user_model.DoesNotExist:
        return None


def _login_limits(request: HttpRequest, username: str | None) -> list[Limit]:
    limits = [Limit("address", client_address(request), LOGIN_ADDRESS_RATE)]
    account = login_account_identity(username)
    if account:
        limits.append(Limit("account", account, LOGIN_ACCOUNT_RATE))
    return limits


def login_lockout_check(request: HttpRequest, *, username: str | None) -> Decision:
    return ratelimit_peek(scope=LOGIN_SCOPE, limits=_login_limits(request, username))


def login_throttled(view: Callable) -> Callable:
    """Mark any login view so LoginThrottleMiddleware guards its POSTs (admin login is built in)."""
    view.login_throttled = True
    return view


class LoginThrottleMiddleware:
    """Refuse login POSTs from a locked account or address with 429 and Retry-After.

    Failures are counted from Django's `user_login_failed` signal, so any login that goes
    through `django.contrib.auth.authenticate` counts; the admin's login view and views
    marked `@login_throttled` are refused before they check the password.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST" or not self._is_login_view(request, view_func):
            return None
        from django.contrib.auth import get_user_model

        username = request.POST.get(get_user_model().USERNAME_FIELD) or request.POST.get("username")
        decision = login_lockout_check(request, username=username)
        if decision.allowed:
            return None
        logger.warning(
            "login: locked out %s from %s on %s",
            username,
            client_address(request),
            _tenant_schema(),
        )
        minutes = max(1, math.ceil(decision.retry_after / 60))
        return too_many_requests(
            request,
            decision,
            f"Too many failed sign-in attempts. Try again in about {minutes} minute(s).",
        )

    @staticmethod
    def _is_login_view(request, view_func) -> bool:
        if getattr(view_func, "login_throttled", False):
            return True
        match = getattr(request, "resolver_match", None)
        return bool(match and match.url_name == "login" and "admin" in match.namespaces)


@receiver(user_login_failed, dispatch_uid="core.ratelimit.login_failed")
def _count_login_failure(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    from django.contrib.auth import get_user_model

    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username")
    ratelimit_record(scope=LOGIN_SCOPE, limits=_login_limits(request, username))


@receiver(user_logged_in, dispatch_uid="core.ratelimit.logged_in")
def _forget_account_failures(sender, request, user, **kwargs):
    # A correct password clears the account's count, not the address's: an attacker who
    # owns one account must not be able to reset their address budget with it.
    if request is not None:
        ratelimit_reset(scope=LOGIN_SCOPE, dimension="account", identity=f"user:{user.pk}")
