"""Health checks: one round of the registry's probes (probes.HealthChecker.run_once).

Target (issue 11): a round of 1,000 probes with a 1 s timeout, of which 100
hang, finishes in about one timeout, not a hundred. Every probe is an HTTP
GET to a server on 127.0.0.1 started in ``setup``: 90 % to one that answers
200 at once, 10 % to one that accepts and never answers. ``track_`` gives
the round's time in timeouts (1.0 = one timeout).

Run alone for the figure: ``.venv/bin/python -m benchmarks.bench_health``.
"""

from __future__ import annotations

import asyncio
import threading
import time

from prism_match import HealthChecker, load_registry

TIMEOUT_S = 1.0
HANGING_SHARE = 0.1


class _Servers:
    """An answering and a silent HTTP server on one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.answering, self.silent = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()
        self.answering_port = self.answering.sockets[0].getsockname()[1]
        self.silent_port = self.silent.sockets[0].getsockname()[1]

    async def _start(self):
        # backlog: a round opens hundreds of connections at once
        answering = await asyncio.start_server(self._answer, "127.0.0.1", 0, backlog=4096)
        silent = await asyncio.start_server(self._never_answer, "127.0.0.1", 0, backlog=4096)
        return answering, silent

    @staticmethod
    async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the prober gives up and closes
        except OSError:
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop():
            for server in (self.answering, self.silent):
                server.close()
                await server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def health_registry(n: int, servers: _Servers):
    hanging = round(n * HANGING_SHARE)
    docs = []
    for i in range(n):
        port = servers.silent_port if i < hanging else servers.answering_port
        docs.append({"backend_id": f"b{i:05d}", "backend_type": "redis",
                     "health_check": {"interval": "30s", "timeout": f"{TIMEOUT_S:g}s",
                                      "endpoint": f"http://127.0.0.1:{port}/health"}})
    return load_registry(docs)


class HealthRound:
    params = [100, 1_000]
    param_names = ["probes"]
    number = 1
    repeat = 3
    warmup_time = 0
    timeout = 120

    def setup(self, n):
        self.servers = _Servers()
        self.checker = HealthChecker(health_registry(n, self.servers))

    def teardown(self, n):
        self.servers.close()

    def time_round(self, n):
        self.checker.run_once()

    def track_round_in_timeouts(self, n):
        started = time.perf_counter()
        rounds = self.checker.run_once()
        elapsed = time.perf_counter() - started
        assert sum(r.results[0].outcome == "timeout" for r in rounds) == round(n * HANGING_SHARE)
        return elapsed / TIMEOUT_S

    track_round_in_timeouts.unit = "timeouts"


def main() -> None:
    bench = HealthRound()
    for n in HealthRound.params:
        bench.setup(n)
        try:
            figures = sorted(bench.track_round_in_timeouts(n) for _ in range(5))
        finally:
            bench.teardown(n)
        hanging = round(n * HANGING_SHARE)
        print(f"{n:,} probes ({hanging} hang), timeout {TIMEOUT_S:g}s: round median {figures[2] * TIMEOUT_S:.3f}s "
              f"(min {figures[0] * TIMEOUT_S:.3f}s, max {figures[-1] * TIMEOUT_S:.3f}s) = {figures[2]:.2f} timeouts")


if __name__ == "__main__":
    main()
