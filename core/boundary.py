"""The input boundary: every text a request brings is checked here, once, before a view sees it.

PostgreSQL text cannot hold NUL, psycopg cannot encode a lone surrogate, and a value longer
than any field we have is never meant: each of these used to surface as a 500 wherever it
reached a query. `text_problem` is the one check; `InputBoundaryMiddleware` applies it to the
path, query string, form body, cookies, headers and any JSON body (API, checkout, webhook)
and either refuses the request with a 400 that says why, before anything is written, or drops
a value nobody chose to send (see the policy in docs/security.md, "Input boundary").
"""

from __future__ import annotations

import codecs
import functools
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

logger = logging.getLogger(__name__)

# The longest single text value (query, form, JSON string, header) we accept. Every field we
# store is shorter (the longest are free-text descriptions); fields with a tighter limit are
# refused by their form or serializer.
MAX_TEXT_LENGTH: int = getattr(settings, "INPUT_MAX_TEXT_LENGTH", 20_000)
# JSON nesting deeper than this is refused rather than walked.
MAX_JSON_DEPTH = 32

# Python strings hold code points, so a surrogate here is always unpaired (json.loads joins a
# valid \\ud83d\\ude00 pair into one code point).
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")

# Query parameters a campaign link carries: written by whoever made the link, not by the buyer
# who clicks it, so a bad one is dropped and the page still shows (issue 20, item 1).
DROPPABLE_QUERY_PREFIXES = ("utm_",)
# Headers the browser adds on its own (and we only keep for attribution or audit): dropped.
DROPPABLE_HEADERS = ("HTTP_REFERER", "HTTP_USER_AGENT")


def text_problem(value: str, *, max_length: int | None = MAX_TEXT_LENGTH) -> str | None:
    """Why `value` may not reach the database or a cookie, or None if it may."""
    found = _BAD_CHARS.search(value)
    if found is not None:
        if found.group() == "\x00":
            return "contains a NUL character, which is not allowed"
        return "contains an unpaired surrogate (invalid Unicode), which is not allowed"
    if max_length is not None and len(value) > max_length:
        return f"is longer than {max_length} characters, which is not allowed"
    return None


def text_or_empty(value: str, *, max_length: int) -> str:
    """For values we may drop (campaign parameters): the value cut to `max_length`, or "" if
    it holds a character that may not be stored."""
    return "" if text_problem(value, max_length=None) else value[:max_length]


def data_problem(
    data: Any, *, field: str = "", max_length: int | None = MAX_TEXT_LENGTH, _depth: int = 0
) -> tuple[str, str] | None:
    """(field path, reason) for the first bad text in parsed JSON (keys and values), or None."""
    if isinstance(data, str):
        reason = text_problem(data, max_length=max_length)
        return (field or "body", reason) if reason else None
    if _depth > MAX_JSON_DEPTH and isinstance(data, dict | list):
        return (field or "body", f"is nested deeper than {MAX_JSON_DEPTH} levels")
    items: Iterator[tuple[str, Any]]
    if isinstance(data, dict):
        for key in data:
            reason = text_problem(str(key), max_length=max_length)
            if reason:
                return (f"{field}.{key!r}" if field else "key", f"a key {reason}")
        items = ((f"{field}.{k}" if field else str(k), v) for k, v in data.items())
    elif isinstance(data, list):
        items = ((f"{field}[{i}]", v) for i, v in enumerate(data))
    else:
        return None
    for name, value in items:
        found = data_problem(value, field=name, max_length=max_length, _depth=_depth + 1)
        if found:
            return found
    return None


class InputRefused(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


# --- the middleware --------------------------------------------------------------------------


def _charset(request: HttpRequest) -> str:
    charset = request.content_params.get("charset", "") if request.content_params else ""
    try:
        return codecs.lookup(charset).name if charset else "utf-8"
    except LookupError:
        return "utf-8"


def _check_body(request: HttpRequest) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    if request.content_type == "application/x-www-form-urlencoded" and request.method != "POST":
        # Django parses form bodies for POST only; a PUT or PATCH form is checked the same way.
        form = QueryDict(request.body, encoding=request.encoding)
        for name, values in form.lists():
            _check_pair(name, values, where="form field")
        return
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for name, values in request.POST.lists():
            _check_pair(name, values, where="form field")
        for name, files in request.FILES.lists():
            _check_pair(name, [f.name or "" for f in files], where="file")
        return
    body = request.body
    if not body:
        return
    # Any other body that parses as JSON is checked whatever its Content-Type says: a view
    # that parses the raw body itself (the gateway webhook) must not be a way around this.
    try:
        data = json.loads(body.decode(_charset(request)))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return  # not JSON: the view refuses it with its own parse error
    found = data_problem(data)
    if found:
        raise InputRefused(*found)


MAX_DB_ID = 2**63 - 1  # PostgreSQL's bigint


def db_id(value: Any) -> int | None:
    """`value` if it can be a row's id (an int, not a bool, from 1 to bigint's largest), else
    None: for ids read from what we signed earlier (links, cookies), whose shape may not be
    the one the reader expects, before they reach a query (text or a number past bigint
    there is a 500)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DB_ID:
        return value
    return None


def raw_body_view(view):
    """For a view that reads `request.body` itself (a signed webhook). A multipart form's body
    is a stream that `_check_body` has read to check its fields, so there is no body left to
    give the view (Django raises): such a request is refused here with the reason, a 400."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if request.content_type == "multipart/form-data":
            return JsonResponse({"error": "send a JSON body, not a multipart form"}, status=400)
        return view(request, *args, **kwargs)

    return wrapped


def _check_pair(name: str, values: list[str], *, where: str) -> None:
    reason = text_problem(name)
    if reason:
        raise InputRefused(where, f"name {reason}")
    for value in values:
        reason = text_problem(value)
        if reason:
            raise InputRefused(name, reason)


def _check_query(request: HttpRequest) -> None:
    dropped = []
    for name, values in request.GET.lists():
        if name.startswith(DROPPABLE_QUERY_PREFIXES) and not text_problem(name):
            if any(text_problem(v) for v in values):
                dropped.append(name)
            continue
        _check_pair(name, values, where="query parameter")
    if dropped:
        query = request.GET.copy()
        for name in dropped:
            del query[name]
        query._mutable = False
        request.GET = query
        logger.info("input boundary: dropped campaign parameters %s", dropped)


def _check_headers(request: HttpRequest) -> None:
    for key in [
        k
        for k in request.META
        if (k.startswith("HTTP_") and k != "HTTP_COOKIE") or k == "CONTENT_TYPE"
    ]:
        value = request.META[key]
        if not isinstance(value, str):
            continue
        reason = text_problem(value)
        if reason is None:
            continue
        if key in DROPPABLE_HEADERS:
            del request.META[key]
            continue
        header = key.removeprefix("HTTP_").replace("_", "-").title()
        raise InputRefused(f"{header} header", reason)


def _drop_bad_cookies(request: HttpRequest) -> None:
    # A cookie is the browser's state, not a request the buyer makes: refusing would lock them
    # out until it expires, so a bad cookie is treated as absent (and replaced when set again).
    cookies = request.COOKIES
    for name in [
        n
        for n, v in cookies.items()
        if text_problem(n, max_length=4096) or text_problem(v, max_length=4096)
    ]:
        del cookies[name]
        logger.info("input boundary: dropped a cookie with bad text")


def input_check(request: HttpRequest) -> None:
    """Raise InputRefused for a request carrying text that may not be stored; drop the values
    the policy drops. The one place requests are checked (InputBoundaryMiddleware)."""
    _drop_bad_cookies(request)
    reason = text_problem(request.path_info)
    if reason:
        raise InputRefused("address", reason)
    _check_headers(request)
    _check_query(request)
    _check_body(request)


def json_endpoint(view):
    """Mark a view that answers JSON (fetched by the page's script), so that a refusal here
    answers JSON too."""
    view.answers_json = True
    return view


def _wants_json(request: HttpRequest) -> bool:
    if "json" in request.META.get("HTTP_ACCEPT", "") or "json" in (request.content_type or ""):
        return True
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return getattr(match.func, "answers_json", False)


def refused_response(request: HttpRequest, exc: InputRefused) -> HttpResponse:
    message = f"The {exc.field} {exc.reason}."
    if request.path_info.startswith("/api/"):
        # The partner API's one error shape (partners/api/errors.py).
        return JsonResponse(
            {
                "error": {
                    "code": "invalid_input",
                    "message": message,
                    "fields": {exc.field: [message]},
                }
            },
            status=400,
        )
    if _wants_json(request):
        return JsonResponse(
            {"error": message, "field": exc.field, "fields": {exc.field: message}}, status=400
        )
    html = render_to_string("core/bad_input.html", {"message": message})
    return HttpResponse(html, status=400)


class InputBoundaryMiddleware:
    """Applies `input_check` to every request before sessions, CSRF, auth or any view run."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            input_check(request)
        except InputRefused as exc:
            logger.warning(
                "input boundary: refused %s %s: %s %s",
                request.method,
                request.path_info.replace("\x00", "\\x00")[:200],
                exc.field,
                exc.reason,
            )
            return refused_response(request, exc)
        return self.get_response(request)


class CheckedJSONParser(JSONParser):
    """The partner API's parser: the same check on what DRF parsed (whatever charset it used),
    so no API view ever sees text the middleware would have refused."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        found = data_problem(data)
        if found:
            raise ParseError(f"The {found[0]} {found[1]}.")
        return data
