"""All services of one application, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..settings import Settings
from ..store.base import Backend
from .accounts import AccountService, Passwords
from .events import EventBus
from .mail import Mailer
from .reports import ReportService
from .tasks import TaskService
from .timer import TimerService

if TYPE_CHECKING:
    from .integrations import IntegrationService


@dataclass
class Services:
    settings: Settings
    backend: Backend
    accounts: AccountService
    tasks: TaskService
    timer: TimerService
    events: EventBus
    reports: ReportService
    integrations: IntegrationService | None = None

    @property
    def sync(self) -> IntegrationService:
        assert self.integrations is not None
        return self.integrations


def build_accounts(settings: Settings, backend: Backend) -> AccountService:
    return AccountService(
        backend,
        public_url=settings.effective_public_url,
        token_ttl_days=settings.token_ttl_days,
        passwords=Passwords(
            time_cost=settings.password_time_cost, memory_kib=settings.password_memory_kib
        ),
        shared=settings.is_mongo,
        mailer=Mailer(
            settings.smtp_url.get_secret_value() if settings.smtp_url else None,
            settings.effective_mail_from,
            timeout_s=settings.smtp_timeout_s,
        ),
    )


def build_services(settings: Settings, backend: Backend) -> Services:
    events = EventBus(backend, shared=settings.is_mongo, poll_s=settings.event_poll_s)
    accounts = build_accounts(settings, backend)
    tasks = TaskService(backend, shared=settings.is_mongo)
    timer = TimerService(backend, tasks, events, shared=settings.is_mongo)
    reports = ReportService(backend, tasks)
    return Services(settings, backend, accounts, tasks, timer, events, reports)
