"""Connectors: each turns one provider's API into a plain snapshot of nodes."""
