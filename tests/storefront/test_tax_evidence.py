"""Tax cases through the real checkout and the local gateway: what the buyer is charged at the
gateway equals the order's lines, for a German consumer, a German business with a valid VAT
ID (reverse charge, also on the one-click upsell), an Austrian card with a declared German
address (the buyer is asked first), a US buyer in a taxed state; and bad VAT IDs, VIES down.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from payments import services as payment_services
from storefront.models import Order, OrderStatus, StoreSettings
from storefront.tax import vat
from storefront.tax.providers import REVERSE_CHARGE_NOTE, TableTaxProvider, TaxPlace
from tests import gateway_helpers as gw
from tests.catalog import catalog as shared_catalog
from tests.factories import TaxRateFactory
from tests.upsell.helpers import offer_token

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"
VALID_DE = "DE136695976"


class FakeVies:
    """A local stand-in for VIES: registered numbers, or down."""

    registered: set[str] = {VALID_DE}
    down = False
    asked: list[str] = []

    def check(self, vat_id):
        FakeVies.asked.append(str(vat_id))
        if FakeVies.down:
            raise vat.ViesUnavailable("VIES: MS_UNAVAILABLE")
        return vat.ViesAnswer(
            valid=str(vat_id) in FakeVies.registered, consultation="WAPIAAAAXYZ123"
        )


@pytest.fixture
def shop(tenant, settings, monkeypatch):
    settings.VIES_CLIENT = "tests.storefront.test_tax_evidence.FakeVies"
    FakeVies.down, FakeVies.asked = False, []
    c = shared_catalog(upsell=True)  # German VAT 19 % is on
    return c


@pytest.fixture
def card_from(monkeypatch):
    """The card's issuing country as the gateway reports it (the local gateway's cards are all
    French): wraps the real gateway, changing only that answer, where it comes (with the card
    setup, whose card the gateway expands; alone, if a gateway's setup does not carry it)."""

    def use(country: str):
        real = payment_services.get_gateway()

        class Issued:
            def __getattr__(self, name):
                return getattr(real, name)

            def setup_retrieve(self, setup_ref):
                setup = real.setup_retrieve(setup_ref)
                assert setup.card_country == "FR"  # the real answer carries it
                return dataclasses.replace(setup, card_country=country)

            def payment_method_country(self, payment_method_ref):
                real.payment_method_country(payment_method_ref)  # the real call still works
                return country

        monkeypatch.setattr(payment_services, "get_gateway", lambda **_: Issued())

    return use


def _store(**fields) -> None:
    StoreSettings.current()  # the row exists (a committing test elsewhere may have emptied it)
    StoreSettings.current()  # the row exists: a committing test may have emptied the table
    assert StoreSettings.objects.filter(pk=1).update(**fields) == 1


def _start(client, **data):
    payload = {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"}
    payload.update(data)
    return client.post("/checkout/course/start", payload)


def _pay(client, started, **extra):
    order = Order.objects.get(token=started.json()["order"])
    if order.setup_ref and gw.confirm_card_setup(order.setup_ref) != "succeeded":
        raise AssertionError("card setup failed")
    return order, client.post(started.json()["pay_url"], {"setup_intent": order.setup_ref, **extra})


def _charged() -> list[int]:
    return sorted(pi.amount for pi in gw.payment_intents() if pi.status == "succeeded")


def test_a_german_consumer_pays_german_vat_and_the_charge_equals_the_lines(
    shop, client_for, card_from, stripe_api_base
):
    card_from("DE")
    _store(eu_vat_evidence=True, tax_country="IE")
    client = client_for(HOST)
    order, paid = _pay(client, _start(client))
    assert paid.json()["status"] == "paid", paid.content
    order.refresh_from_db()
    (line,) = order.lines.all()
    assert (line.net_amount, line.tax_amount, line.tax_rate) == (4900, 931, Decimal("19.000"))
    assert not line.reverse_charge and not order.reverse_charge and order.vat_id == ""
    assert _charged() == [line.total_amount] == [5831]
    assert order.tax_evidence["declared_country"] == "DE"
    assert order.tax_evidence["card_country"] == "DE" and order.tax_evidence["conflict"] == ""


def test_a_german_business_with_a_valid_vat_id_pays_no_vat_under_reverse_charge(
    shop, client_for, card_from, stripe_api_base
):
    card_from("DE")
    _store(eu_vat_evidence=True, tax_country="IE")
    client = client_for(HOST)
    started = _start(client, vat_id="de 136 695 976")
    assert started.status_code == 200, started.content
    assert started.json()["quote"]["total"] == 4900
    order, paid = _pay(client, started)
    assert paid.json()["status"] == "paid"
    order.refresh_from_db()
    assert order.vat_id == VALID_DE and order.reverse_charge
    evidence = order.tax_evidence
    assert (
        evidence["vat_id_status"] == "valid" and evidence["vies_consultation"] == "WAPIAAAAXYZ123"
    )
    (core,) = order.lines.all()
    assert (core.tax_amount, core.total_amount, core.reverse_charge) == (0, 4900, True)
    assert FakeVies.asked == [VALID_DE]
    # The one-click upsell is taxed from the order's evidence: reverse charge again.
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert accepted.status_code == 303
    upsell = order.lines.get(kind="upsell")
    assert (upsell.tax_amount, upsell.reverse_charge) == (0, True)
    assert _charged() == sorted([4900, upsell.total_amount]) and upsell.total_amount == 1200
    assert FakeVies.asked == [VALID_DE]  # not asked again
    assert "Article 196" in REVERSE_CHARGE_NOTE  # what the invoice states for these lines


def test_a_business_in_the_stores_own_country_pays_domestic_vat(
    shop, client_for, card_from, stripe_api_base
):
    card_from("DE")
    _store(tax_country="DE")
    client = client_for(HOST)
    order, paid = _pay(client, _start(client, vat_id=VALID_DE))
    order.refresh_from_db()
    assert order.vat_id == VALID_DE and not order.reverse_charge
    assert _charged() == [5831]


def test_an_austrian_card_with_a_declared_german_address_asks_the_buyer_before_charging(
    shop, client_for, card_from, stripe_api_base
):
    card_from("AT")
    _store(eu_vat_evidence=True, tax_country="IE")
    client = client_for(HOST)
    started = _start(client)
    order, asked = _pay(client, started)
    assert asked.status_code == 409
    body = asked.json()
    assert body["status"] == "confirm_country" and body["country"] == "DE"
    assert body["other_country"] == "AT" and "Austria" in body["error"]
    assert gw.payment_intents() == []  # nothing charged before the answer
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING
    assert order.tax_evidence["card_country"] == "AT"
    assert order.tax_evidence["conflict"] == "card_country"

    confirmed = client.post(
        started.json()["pay_url"], {"setup_intent": order.setup_ref, "confirm_country": "de"}
    )
    assert confirmed.json()["status"] == "paid", confirmed.content
    order.refresh_from_db()
    assert order.tax_evidence["confirmed_by_buyer"] == "DE" and order.tax_evidence["confirmed_at"]
    (line,) = order.lines.all()
    assert line.tax_amount == 931 and _charged() == [5831]


def test_without_eu_vat_collection_a_conflict_is_recorded_but_not_asked(
    shop, client_for, stripe_api_base
):
    client = client_for(HOST)  # the local gateway's cards are French
    order, paid = _pay(client, _start(client))
    assert paid.json()["status"] == "paid"
    order.refresh_from_db()
    assert order.tax_evidence["card_country"] == "FR"
    assert order.tax_evidence["conflict"] == "card_country"
    assert "confirmed_by_buyer" not in order.tax_evidence


def test_a_us_buyer_in_a_taxed_state_pays_that_states_rate(shop, client_for, stripe_api_base):
    TaxRateFactory(country="US", region="CA", rate=Decimal("7.250"), name="Sales tax")
    client = client_for(HOST)
    order, paid = _pay(client, _start(client, country="US", region="ca"))
    assert paid.json()["status"] == "paid"
    order.refresh_from_db()
    (line,) = order.lines.all()
    assert (line.tax_country, line.tax_region, line.tax_amount) == ("US", "CA", 355)
    assert _charged() == [5255]
    other_state = _start(client_for(HOST), country="US", region="OR")
    assert other_state.json()["quote"]["total"] == 4900


@pytest.mark.parametrize(
    ("vat_id", "message"),
    [
        ("DE136695977", "check digit"),
        ("DE12345", "format"),
        ("ATU10223006", "starts with DE"),
        ("DE 1366<script>", "only letters and digits"),
        ("X" * 40, "at most"),
    ],
)
def test_a_malformed_vat_id_is_refused_with_a_reason_and_creates_nothing(
    shop, client_for, stripe_api_base, vat_id, message
):
    response = _start(client_for(HOST), vat_id=vat_id)
    assert response.status_code == 400
    assert "vat_id" in response.json()["fields"]
    assert message in response.json()["error"] or message in str(response.json()["fields"])
    assert not Order.objects.exists() and FakeVies.asked == []


def test_a_vat_id_vies_does_not_know_is_refused(shop, client_for, stripe_api_base):
    response = _start(client_for(HOST), vat_id="DE811569869")  # well formed, not registered
    assert response.status_code == 400 and "VIES" in response.json()["error"]
    assert not Order.objects.exists()


def test_with_vies_down_the_sale_proceeds_as_a_consumer_sale_and_says_so(
    shop, client_for, card_from, stripe_api_base
):
    card_from("DE")
    FakeVies.down = True
    client = client_for(HOST)
    order, paid = _pay(client, _start(client, vat_id=VALID_DE))
    assert paid.json()["status"] == "paid"
    order.refresh_from_db()
    assert order.vat_id == VALID_DE and not order.reverse_charge
    assert order.tax_evidence["vat_id_status"] == "vies_unavailable"
    assert order.tax_evidence["reverse_charge"] == "no"
    assert _charged() == [5831]


# --- the pieces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "country"),
    [
        ("DE136695976", "DE"),
        ("ATU10223006", "AT"),
        ("BE0403170701", "BE"),
        ("NL004495445B01", "NL"),
        ("IT00743110157", "IT"),
        ("FR40303265045", "FR"),
        ("PL5260001246", "PL"),
        ("DK13585628", "DK"),
        ("FI20774740", "FI"),
        ("EL094014201", "GR"),
        ("136695976", "DE"),  # the prefix may be left out
    ],
)
def test_real_vat_ids_pass_their_countrys_format_and_check_digit(value, country):
    parsed = vat.vat_id_parse(value, country=country)
    assert str(parsed).endswith(value[-5:])


@pytest.mark.parametrize(
    ("value", "country"),
    [
        ("ATU10223007", "AT"),
        ("BE0403170702", "BE"),
        ("NL004495446B01", "NL"),
        ("IT00743110158", "IT"),
        ("FR41303265045", "FR"),
        ("PL5260001247", "PL"),
        ("DK13585629", "DK"),
        ("US123456789", "US"),
        ("", "DE"),
    ],
)
def test_vat_ids_with_a_wrong_check_digit_or_country_are_refused(value, country):
    with pytest.raises(vat.VatIdInvalid):
        vat.vat_id_parse(value, country=country)


def test_the_default_provider_is_the_rate_table_and_reverse_charge_is_zero_rated(tenant):
    TaxRateFactory(country="DE", region="", rate=Decimal("19.000"), name="VAT")
    provider = TableTaxProvider()
    assert provider.rate_for(place=TaxPlace("DE")).rate == Decimal("19.000")
    assert provider.rate_for(place=TaxPlace("FR")).rate == 0
    answer = provider.rate_for(place=TaxPlace("DE", reverse_charge=True))
    assert answer.rate == 0 and answer.note == REVERSE_CHARGE_NOTE


class FlatTen:
    def rate_for(self, *, place, product=None):
        from storefront.tax.providers import TaxAnswer

        return TaxAnswer(Decimal("10.000"), "Engine tax")


def test_another_tax_engine_plugs_in_through_the_setting(shop, client_for, settings):
    settings.TAX_PROVIDER = "tests.storefront.test_tax_evidence.FlatTen"
    quote = client_for(HOST).get("/checkout/course/quote", {"country": "FR"}).json()
    assert quote["total"] == 4900 + 490


class FakeGeoIp:
    """A GeoIP database stand-in (none is shipped): every address is in Austria."""

    def __init__(self, path):
        self.path = path

    def country(self, ip):
        return "AT" if ip else ""


def test_with_a_geoip_database_the_ip_country_is_evidence_too(
    shop, client_for, card_from, settings, stripe_api_base
):
    settings.GEOIP_DATABASE = "/nonexistent/country.mmdb"
    settings.GEOIP_CLASS = "tests.storefront.test_tax_evidence.FakeGeoIp"
    card_from("DE")
    _store(eu_vat_evidence=True, tax_country="IE")
    client = client_for(HOST)
    started = _start(client)
    order, asked = _pay(client, started)
    assert asked.status_code == 409 and "connection is in Austria" in asked.json()["error"]
    order.refresh_from_db()
    assert order.tax_evidence["ip_country"] == "AT" and order.tax_evidence["card_country"] == "DE"
    assert gw.payment_intents() == []


def test_without_a_geoip_database_no_ip_country_is_recorded(shop, client_for, stripe_api_base):
    client = client_for(HOST)
    order, paid = _pay(client, _start(client))
    order.refresh_from_db()
    assert "ip_country" not in order.tax_evidence
