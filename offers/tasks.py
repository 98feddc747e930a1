"""Offer tasks (imported here so the worker's autodiscovery registers them)."""

from offers.guardrails import guardrails_enforce_task

__all__ = ["guardrails_enforce_task"]
