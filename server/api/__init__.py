"""HTTP layer: parse, call one service, serialise."""
