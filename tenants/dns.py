"""DNS look-ups for custom-domain verification, behind a small protocol so tests need no network.

`tenants.domains` asks three questions: the TXT strings at a name, the CNAME target of a name,
and the addresses of a name. `SystemResolver` answers them with dnspython (imported when first
used, so nothing else pays for it); tests pass a `StaticResolver` with fixed answers. Every
method returns an empty answer for a name that does not exist or has no such record, and raises
`ResolverError` when the question could not be answered (timeout, no server), so the caller can
tell "not there yet" from "could not ask".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from core.identity import domain_key


class ResolverError(Exception):
    """The look-up could not be answered (timeout, no name server); try again later."""


class Resolver(Protocol):
    def txt(self, name: str) -> list[str]: ...

    def cname(self, name: str) -> str | None: ...

    def addresses(self, name: str) -> set[str]: ...


class SystemResolver:
    """The system's name servers, through dnspython (lazily imported)."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def _answer(self, name: str, rdtype: str):
        import dns.exception
        import dns.resolver

        from core.cpu_slots import waiting

        try:
            with waiting():  # no CPU slot held while the name servers think
                return dns.resolver.resolve(name, rdtype, lifetime=self.timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise ResolverError(f"{rdtype} look-up of {name} failed: {exc}") from exc

    def txt(self, name: str) -> list[str]:
        return [
            b"".join(record.strings).decode("utf-8", "replace")
            for record in self._answer(name, "TXT")
        ]

    def cname(self, name: str) -> str | None:
        for record in self._answer(name, "CNAME"):
            return domain_key(record.target.to_text())
        return None

    def addresses(self, name: str) -> set[str]:
        found: set[str] = set()
        for rdtype in ("A", "AAAA"):
            found.update(record.address for record in self._answer(name, rdtype))
        return found


class StaticResolver:
    """Fixed answers (tests, demos): `txt={name: [...]}`, `cname={name: target}`, `addresses=…`."""

    def __init__(
        self,
        *,
        txt: Mapping[str, Iterable[str]] | None = None,
        cname: Mapping[str, str] | None = None,
        addresses: Mapping[str, Iterable[str]] | None = None,
        failing: bool = False,
    ) -> None:
        self._txt = {domain_key(k): list(v) for k, v in (txt or {}).items()}
        self._cname = {domain_key(k): domain_key(v) for k, v in (cname or {}).items()}
        self._addresses = {domain_key(k): set(v) for k, v in (addresses or {}).items()}
        self.failing = failing

    def _check(self, name: str) -> str:
        if self.failing:
            raise ResolverError(f"look-up of {name} timed out")
        return domain_key(name)

    def txt(self, name: str) -> list[str]:
        return list(self._txt.get(self._check(name), []))

    def cname(self, name: str) -> str | None:
        return self._cname.get(self._check(name))

    def addresses(self, name: str) -> set[str]:
        return set(self._addresses.get(self._check(name), set()))


def default_resolver() -> Resolver:
    """The resolver class named by CUSTOM_DOMAIN_RESOLVER (a dotted path), else the system's."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "CUSTOM_DOMAIN_RESOLVER", "") or "tenants.dns.SystemResolver"
    return import_string(path)()
