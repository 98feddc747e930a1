"""schemathesis against the served schema, in-process over WSGI: no 5xx, answers match it.

Every call goes to store t1's host with a write key, given as an auth provider so that
schemathesis also re-sends requests without the key and with a wrong one and expects 401.
Bounded: a few examples per operation and mode, so the walk stays well under a minute.
(schemathesis.pytest.from_fixture needs a pytest private attribute that pytest 9.2 dropped,
so the operations are walked here and every broken one is reported at once.)
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from partners.models import ApiKey
from partners.services import api_key_create
from tests.factories import OfferFactory

pytestmark = pytest.mark.slow

HOST = "t1.localhost"
MIN_OPERATIONS = 30  # the walk covers the real schema, not an empty or truncated one
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 4}  # ~15 s on an idle core


def _served_schema(token: str):
    # Identity encoding: the WSGI test transport does not undo GZipMiddleware.
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json",
        get_wsgi_application(),
        headers={"Host": HOST, "Accept-Encoding": "identity"},
    )
    schema.config.update(headers={"Accept-Encoding": "identity"})
    # PostgreSQL text cannot hold NUL: the API refuses it with a 400 on purpose, which
    # test_api checks on every text parameter; here it would only read as "valid data refused".
    schema.config.generation.update(allow_x00=False)

    @schema.auth()
    class WriteKey:
        def get(self, case, ctx):
            return token

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def _semantic_refusals(case) -> list:
    """A write may be refused for what no schema can say (an id that does not exist, a slug
    taken, a ladder missing a product, a downsell without its upsell): for writes, a 4xx to
    schema-valid data is not a failure. Reads must accept everything the schema allows."""
    return [positive_data_acceptance] if case.method.upper() != "GET" else []


def _payout_rows() -> None:
    """A transfer and a payout account, so payouts' answers are checked with real rows too."""
    from django.utils import timezone

    from payments.models import ChargeAttempt, PayoutAccount, TransferAttempt

    charge = ChargeAttempt.objects.create(
        purpose="fuzz-charge",
        idempotency_key="fuzz-charge",
        reference="order:1",
        amount=4900,
        currency="USD",
        customer_ref="cus_fuzz",
        payment_method_ref="pm_fuzz",
        status="succeeded",
    )
    TransferAttempt.objects.create(
        charge_attempt=charge,
        idempotency_key="transfer:fuzz",
        destination="acct_fuzz",
        transfer_group="order:1",
        gross=4900,
        fee=200,
        amount=4700,
        currency="USD",
        status="succeeded",
        gateway_ref="tr_fuzz",
    )
    PayoutAccount.objects.create(
        idempotency_key="connect-account:fuzz",
        account_ref="acct_fuzz",
        requirements_due=["external_account"],
        synced_at=timezone.now(),
    )


# Fuzzing is not a partner: past the failed-authentication budget of its one address
# (schemathesis probes without and with broken credentials).
@override_settings(API_AUTH_FAILURE_RATE="100000/m")
def test_every_operation_answers_within_the_schema_and_never_with_a_5xx(live_partners):
    OfferFactory()  # list endpoints answer with real rows, not only empty pages
    _payout_rows()
    issued = api_key_create(name="fuzz", scope=ApiKey.Scope.WRITE)
    token = issued.token
    # Past the per-key maximum a partner may be given.
    ApiKey.objects.filter(pk=issued.api_key.pk).update(rate_per_minute=10**6)
    schema = _served_schema(token)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= MIN_OPERATIONS, [op.label for op in operations]

    failures = []
    for operation in operations:
        for mode, examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode, auth_storage=schema.auth))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                # The host picks the store; schemathesis' own probes (e.g. without the key)
                # reuse these transport arguments, so they reach the same store.
                case.call_and_validate(
                    base_url=f"http://{HOST}",
                    headers={"Host": HOST},
                    excluded_checks=_semantic_refusals(case),
                )

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # one run shows every broken one
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2500])
    assert not failures, "\n\n".join(failures)
