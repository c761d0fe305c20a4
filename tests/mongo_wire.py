"""Serve a MongoDB wire-protocol test server (mongoeco) on loopback.

Runs under Python >= 3.13 (mongoeco's requirement), in the separate virtualenv that
``scripts/test.sh`` builds. Prints the connection URI on its first line, then serves
until stdin closes or it is terminated.
"""

import asyncio
import sys


async def main() -> None:
    from mongoeco.wire import AsyncMongoEcoProxyServer

    async with AsyncMongoEcoProxyServer(host="127.0.0.1", port=0) as server:
        print(server.address.uri, flush=True)
        loop = asyncio.get_running_loop()
        # Exit when the parent goes away (its end of our stdin closes).
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
