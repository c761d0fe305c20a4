"""Handlers for integrations: enable, sync, status, unlink."""

from __future__ import annotations

from .core import Api

api = Api()
