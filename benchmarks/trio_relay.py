"""A bare trio TCP byte relay: the floor any trio proxy is measured against.

Each accepted connection opens one upstream connection and runs two pump tasks that
copy bytes as they come, without parsing anything. When either side closes or
breaks, both sides are closed. Listens on 127.0.0.1 only.

    python benchmarks/trio_relay.py --listen-port 6433 --target-port 5432
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence

import trio

HOST = "127.0.0.1"

# One receive per wakeup; 64 KiB holds every pgbench -S message whole and keeps a
# COPY stream at a few syscalls per megabyte.
RECEIVE_SIZE = 65536

log = logging.getLogger("pamwire.bench.relay")


async def pump(
    source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope
) -> None:
    """Copy bytes from source to sink until either ends, then cancel the pair."""
    try:
        while True:
            data = await source.receive_some(RECEIVE_SIZE)
            if not data:
                break
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        done.cancel()


def make_handler(
    target_port: int,
) -> Callable[[trio.SocketStream], Awaitable[None]]:
    async def handle(client: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream(HOST, target_port)
        except OSError as exc:
            log.warning("cannot reach %s:%s: %s", HOST, target_port, exc)
            await client.aclose()
            return
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, upstream, nursery.cancel_scope)
            nursery.start_soon(pump, upstream, client, nursery.cancel_scope)

    return handle


async def serve(listen_port: int, target_port: int) -> None:
    listeners = await trio.open_tcp_listeners(listen_port, host=HOST)
    log.info("relaying %s:%s to %s:%s", HOST, listen_port, HOST, target_port)
    await trio.serve_listeners(make_handler(target_port), listeners)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target-port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr
    )
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, args.listen_port, args.target_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
