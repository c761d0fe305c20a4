"""Integrations: enable, sync, unlink (filled in by the sync engine)."""

from __future__ import annotations


class IntegrationService:
    pass
