"""Schemathesis hooks for bench/fuzz.py (``SCHEMATHESIS_HOOKS=bench.fuzz_hooks``): API
tokens issued before the run, one per line in the file ``TT_FUZZ_TOKENS_FILE``, handed
out one after the other (the next after each 401)."""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis

from tests.fuzzing import TokenPool


@schemathesis.auth(retry_on=[401])
class FuzzTokens(TokenPool):
    def __init__(self) -> None:
        super().__init__(Path(os.environ["TT_FUZZ_TOKENS_FILE"]).read_text().split())
