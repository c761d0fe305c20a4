"""Persistence: one backend protocol, two adapters (SQLite, MongoDB), repositories on top."""
