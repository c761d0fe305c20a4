"""Schemathesis hooks for bench/fuzz.py (``SCHEMATHESIS_HOOKS=bench.fuzz_hooks``): sign in
as ``TT_FUZZ_EMAIL`` / ``TT_FUZZ_PASSWORD`` at ``TT_FUZZ_URL``, again after a 401."""

from __future__ import annotations

import os

import schemathesis

from tests.fuzzing import SignIn


@schemathesis.auth(retry_on=[401])
class FuzzSignIn(SignIn):
    def __init__(self) -> None:
        super().__init__(
            os.environ["TT_FUZZ_URL"], os.environ["TT_FUZZ_EMAIL"], os.environ["TT_FUZZ_PASSWORD"]
        )
