"""Every route of a store, as a stranger and as its owner, with what a careless or hostile
client sends (a NUL, a lone surrogate, a list where an object was expected, absurd ids and
page numbers): a clear 4xx or a page, never a 500."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import OfferFactory, ProductFactory

HOST = "t1.localhost"
SURROGATE = "%ED%A0%80"  # a lone surrogate, UTF-8-encoded as a careless client does


def _routes(resolver: URLResolver, prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _routes(entry, route)
        else:
            found.append((route, entry))
    return found


def _fill(route: str, value: str) -> str | None:
    """The route with `value` for each of its parameters (path converters and the regex
    groups of the admin's and the API router's routes); None for a regex that is no path."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<[^>]+>[^)]*\)", value, route)
    route = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", value, route).replace("\\", "")
    if any(c in route for c in "()[]?*+|{}"):
        return None
    return "/" + route


@pytest.fixture
def store(tenant):
    core = ProductFactory(slug="course", name="Photo course", price_amount=4900)
    OfferFactory(trigger_product=core, price_amount=900, headline="Add the presets")
    return core


BAD_QUERY = f"?q=%00&p={SURROGATE}&page=-1&o=zz&id__in=x&all=&_changelist_filters=%00&e=1"
HUGE = "99999999999999999999"  # past PostgreSQL's bigint
ODD_QUERY = f"?page={HUGE}&o=-99.5&start=2026-02-30&end=x&days=1e9&id={HUGE}"
ODD_JSON = [
    "[1, 2]",
    f'{{"price_amount": {HUGE}, "name": ["x"], "status": {{}}, "id": "x"}}',
    '{"amount": -1, "line_id": "1", "lines": "all", "metadata": [null]}',
    "",
]
BAD_FORMS = [
    {"email": "a\x00b", "name": "x", "country": "DE", "amount": "1e309"},
    {"email": "x@example.com", "items": ["a", "b"], "price_amount": "-1"},
]


@pytest.mark.parametrize(
    ("host", "urlconf", "who"),
    [
        (HOST, "config.urls_tenant", "stranger"),
        (HOST, "config.urls_tenant", "owner"),
        (HOST, "config.urls_tenant", "partner"),
        ("localhost", "config.urls_public", "stranger"),
    ],
)
def test_no_route_answers_500_to_odd_input(store, host, urlconf, who):
    # An address of its own: the rate limits and the login lockout it may trip (kept in
    # Redis, not rolled back) stay away from every other test's client.
    address = {"owner": "203.0.113.31", "stranger": "203.0.113.32", "partner": "203.0.113.33"}
    client = Client(HTTP_HOST=host, REMOTE_ADDR=address[who], raise_request_exception=False)
    if who == "owner":
        assert client.login(username="owner", password="owner-pass-123")
    if who == "partner":  # a key that may write: every API route, every method
        from partners.models import ApiKey
        from partners.services import api_key_create

        token = api_key_create(name="fuzz", scope=ApiKey.Scope.WRITE).token
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    failures = []
    paths = {
        path
        for route, _pattern in _routes(get_resolver(urlconf))
        for value in ("1", HUGE, "x")
        if (path := _fill(route, value)) is not None and "logout" not in path
    }
    if who == "partner":
        paths = {p for p in paths if p.startswith("/api/")}
    for path in sorted(paths):
        attempts = [("GET", path, None), ("GET", path + BAD_QUERY, None)]
        attempts.append(("GET", path + ODD_QUERY, None))
        attempts += [("POST", path, form) for form in BAD_FORMS]
        for body in ('[{"a": 1}, "x\\u0000"]', '{"a": 1e999, "b": [[[[]]]]}', "{"):
            attempts.append(("JSON", path, body))
        if who == "partner":
            for method in ("PUT", "PATCH", "DELETE"):
                attempts += [(method, path, body) for body in ODD_JSON]
        for method, url, body in attempts:
            if method == "GET":
                response = client.get(url)
            elif method == "POST":
                response = client.post(url, body)
            elif method == "JSON":
                response = client.post(url, body, content_type="application/json")
            else:
                response = client.generic(method, url, body, content_type="application/json")
            if response.status_code >= 500:
                failures.append((method, url, response.status_code))
    assert failures == [], "\n".join(map(str, failures))


def test_no_admin_action_answers_500_to_odd_selections(store):
    """Every action of every admin list, as the owner, with selections that name no row: an
    id past bigint, text, nothing, and 'all' with a search that matches nothing."""
    from django.contrib import admin
    from django.test import RequestFactory
    from django.urls import reverse

    client = Client(HTTP_HOST=HOST, REMOTE_ADDR="203.0.113.34", raise_request_exception=False)
    assert client.login(username="owner", password="owner-pass-123")
    request = RequestFactory().get("/admin/", HTTP_HOST=HOST)
    from django.contrib.auth import get_user_model

    request.user = get_user_model().objects.get(username="owner")
    failures, tried = [], 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        try:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        except Exception:  # noqa: BLE001 - a model without a list
            continue
        for action in model_admin.get_actions(request) or {}:
            for selection in ([HUGE], ["x"], [], ["1", HUGE]):
                form = {"action": action, "_selected_action": selection, "index": "0"}
                response = client.post(url, form)
                tried += 1
                if response.status_code >= 500:
                    failures.append((url, action, selection, response.status_code))
            response = client.post(
                url + "?q=%E2%80%94nothing", {"action": action, "select_across": "1", "index": "0"}
            )
            if response.status_code >= 500:
                failures.append((url, action, "all", response.status_code))
    assert tried > 20  # the registry was walked
    assert failures == [], "\n".join(map(str, failures))


def _odd_form_data(form) -> list[dict]:
    """Two fillings of every field of a Django form with what its type should refuse."""
    from django import forms

    odd, wrong = {}, {}
    for name, field in form.fields.items():
        if isinstance(field, forms.FileField):
            continue
        if isinstance(field, forms.ModelMultipleChoiceField | forms.MultipleChoiceField):
            odd[name], wrong[name] = ["x", HUGE], [str(HUGE)]
        elif isinstance(field, forms.ModelChoiceField | forms.ChoiceField):
            odd[name], wrong[name] = str(HUGE), "x"
        elif isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField):
            odd[name], wrong[name] = str(HUGE), "1e999"
        elif isinstance(field, forms.SplitDateTimeField):
            odd[f"{name}_0"], odd[f"{name}_1"] = "2026-02-30", "25:61"
            wrong[f"{name}_0"], wrong[f"{name}_1"] = "x", "x"
        elif isinstance(field, forms.DateField | forms.DateTimeField | forms.TimeField):
            odd[name], wrong[name] = "2026-02-30", "99999-01-01"
        elif isinstance(field, forms.BooleanField):
            odd[name], wrong[name] = "on", "x"
        elif isinstance(field, forms.JSONField):
            odd[name], wrong[name] = "[", '{"a": ' * 40
        else:
            odd[name], wrong[name] = "x" * 10_000, f"{HUGE}"
    return [odd, wrong]


def test_no_admin_form_answers_500_to_odd_values(store):
    """Every add form of the store admin, and the change form of a row where one exists,
    posted as the owner with each field filled with what its type should refuse."""
    from django.contrib import admin
    from django.urls import reverse

    client = Client(HTTP_HOST=HOST, REMOTE_ADDR="203.0.113.35", raise_request_exception=False)
    assert client.login(username="owner", password="owner-pass-123")
    failures, forms_posted = [], 0
    for model, _model_admin in admin.site._registry.items():
        opts = model._meta
        urls = []
        try:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        except Exception:  # noqa: BLE001 - no add page
            pass
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
            )
        for url in urls:
            page = client.get(url)
            if page.status_code != 200 or not page.context or "adminform" not in page.context:
                continue
            for data in _odd_form_data(page.context["adminform"].form):
                forms_posted += 1
                response = client.post(url, data)
                if response.status_code >= 500:
                    failures.append((url, response.status_code))
    assert forms_posted > 20
    assert failures == [], "\n".join(map(str, failures))


@pytest.mark.parametrize("who", ["stranger", "owner"])
def test_no_page_form_answers_500_to_odd_values(store, who):
    """Every page of a store that shows a form (the buyer's, the creator's own pages beside
    the admin's lists), posted back with each field filled with what its type should refuse."""
    from django import forms

    address = {"owner": "203.0.113.36", "stranger": "203.0.113.37"}[who]
    client = Client(HTTP_HOST=HOST, REMOTE_ADDR=address, raise_request_exception=False)
    if who == "owner":
        assert client.login(username="owner", password="owner-pass-123")
    paths = {
        path
        for route, _pattern in _routes(get_resolver("config.urls_tenant"))
        for value in ("1", "course")
        if (path := _fill(route, value)) is not None and "logout" not in path
    }
    failures, forms_posted = [], 0
    for path in sorted(paths):
        page = client.get(path)
        contexts = page.context or []
        found = [
            value
            for context in (contexts if isinstance(contexts, list) else [contexts])
            for value in context.flatten().values()
            if isinstance(value, forms.BaseForm)
        ]
        for form in found[:3]:
            for data in _odd_form_data(form):
                forms_posted += 1
                response = client.post(
                    path, {f"{form.prefix}-{k}" if form.prefix else k: v for k, v in data.items()}
                )
                if response.status_code >= 500:
                    failures.append((path, type(form).__name__, response.status_code))
    assert forms_posted > (20 if who == "owner" else 0)
    assert failures == [], "\n".join(map(str, failures))
