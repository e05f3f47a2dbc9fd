#!/usr/bin/env python3
"""A local stand-in for the webhook's Service: one loopback address in front of several
webhook replicas, as kube-proxy puts one ClusterIP in front of a Service's endpoints.

Like a Service, it sends each new connection to a *ready* backend (round robin), where ready
means the backend's /readyz answers 200 (polled every 200 ms, as endpoints follow a pod's
readiness). A terminating replica reports not ready at once and keeps serving during its
drain delay, so it leaves the rotation before it stops accepting. TLS passes through
untouched: the API server talks to the webhook itself. Loopback only.

  balancer.py --listen 127.0.0.1:18443 --backend 127.0.0.1:18444,18081 --backend ...
"""

import argparse
import asyncio
import itertools
import sys


class Backend:
    def __init__(self, spec):
        address, probe_port = spec.split(",")
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.probe_port = int(probe_port)
        self.ready = False

    async def check(self):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.probe_port), 1
            )
            writer.write(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 1)
            writer.close()
            self.ready = b" 200 " in status
        except (OSError, asyncio.TimeoutError):
            self.ready = False

    async def watch(self):
        while True:
            await self.check()
            await asyncio.sleep(0.2)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--backend", action="append", required=True)
    args = parser.parse_args()
    backends = [Backend(spec) for spec in args.backend]
    turns = itertools.cycle(range(len(backends)))

    async def handle(client_reader, client_writer):
        start = next(turns)
        # Ready backends in round-robin order; none ready means no endpoint: refuse.
        order = [backends[(start + i) % len(backends)] for i in range(len(backends))]
        for backend in (b for b in order if b.ready):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    backend.host, backend.port
                )
            except OSError:
                continue
            await asyncio.gather(
                pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer)
            )
            return
        client_writer.close()

    async def serve():
        for backend in backends:
            asyncio.create_task(backend.watch())
        host, port = args.listen.rsplit(":", 1)
        server = await asyncio.start_server(handle, host, int(port))
        print(f"balancing {args.listen} over {len(backends)} backends", file=sys.stderr, flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
