"""Fake HeySpace, Pivotal Tracker and Asana servers speaking real HTTP on loopback.

Each module offers ``<Name>State`` (the data and its control methods), ``create_app(state)``
(an ``aiohttp.web.Application``) and a runner: ``python -m tests.fakes.<name> --port N``.
"""
