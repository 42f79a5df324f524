"""Health probes: the registrations' ``health_check`` blocks, run.

Registrations (their ``health_check`` block and ``connection.endpoint``) →
a probe plan per backend → rounds of probes run concurrently with asyncio
(a TCP connect, an HTTP GET over asyncio streams, or a command run without a
shell), each bounded by its block's ``timeout`` → `health.CheckResult`
values → `health.HealthTracker`, which writes the status, uptime, incidents
and ``last_check_at`` through the registry. `HealthChecker` runs one round
on demand (`run_once`), every backend on its own ``interval`` as an asyncio
task (`run`), or in a background thread with its own event loop
(`start`/`stop`, or a ``with`` block). The command line's ``prism-match
health`` is built on it (health_cli.py).

Which probe serves which check:

* a check with a ``command`` runs it: exit status 0 passes; the last line
  of its output, when it reads as the check's unit (``25ms`` for
  ``latency``, ``0.4%`` or ``0.4`` for ``error_rate``, a number for any
  other check), is the measured value;
* ``connectivity`` and ``latency`` without a command read the backend's
  endpoint probe (one per round, shared): pass when it connects (TCP) or
  answers 2xx/3xx (HTTP), its latency in seconds as the value;
* any other check needs a command.

Commands come from registry documents, so running them is code execution:
like Consul's ``enable_script_checks``, they run only when the checker is
built with ``allow_commands=True`` (``--allow-commands``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import shlex
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import RegistryError
from .health import DEFAULT_CONCURRENCY, CheckResult, HealthTracker
from .redact import printable, redacted_url
from .schema import HealthCheckConfig, ThresholdSeconds, parse_threshold

__all__ = ["HealthChecker", "ProbeResult", "BackendRound", "DEFAULT_CONCURRENCY"]

# A command's output is read for its last line only; the tail kept is bounded
# so that a chatty command cannot grow the checker's memory.
_OUTPUT_TAIL = 4096
_HTTP_LINE_LIMIT = 8192
_ENDPOINT_CHECKS = ("connectivity", "latency")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check of one backend in one round.

    ``outcome`` is ``pass``, ``fail``, ``timeout`` or ``error`` (the probe
    could not be run); ``latency`` is the probe's time in seconds (None when
    it did not answer); ``value`` is what the tracker compares with the
    check's threshold; ``detail`` says what happened (``HTTP 500``, ``exit
    1``, ``connection refused``), with any URL password masked.
    """

    check: str
    probe: str
    outcome: str
    latency: float | None
    value: float | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome == "pass"


@dataclass(frozen=True, slots=True)
class BackendRound:
    """A backend's round: when it started, each check's result, and its status before and after."""

    backend_id: str
    at: datetime
    results: tuple[ProbeResult, ...]
    status_before: str
    status_after: str

    def to_dict(self) -> dict[str, Any]:
        return {"backend_id": self.backend_id, "at": self.at.isoformat(),
                "status_before": self.status_before, "status_after": self.status_after,
                "checks": [{"check": r.check, "probe": r.probe, "outcome": r.outcome, "latency_s": r.latency,
                            "value": r.value, "detail": r.detail} for r in self.results]}


# --- what to probe ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Target:
    """The endpoint probe: a TCP connect, or an HTTP GET of ``url``."""

    kind: str            # "tcp" or "http"
    host: str
    port: int
    url: str = ""        # http only; may hold credentials: shown through redacted_url
    shown: str = ""


@dataclass(frozen=True, slots=True)
class _Plan:
    backend_id: str
    config: HealthCheckConfig
    target: _Target | None                      # None when every check runs a command
    commands: dict[str, tuple[str, ...]]        # check name → argv
    environment: dict[str, str]


def _host_port(text: str, default_port: int | None, where: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or a URL) → its host and port."""
    parts = urlsplit(text if "://" in text else f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise RegistryError(f"Expected a port in 0..65535, got `{printable(redacted_url(text), 80)}`", where) from None
    if port is None:
        port = default_port
    if not parts.hostname or port is None:
        raise RegistryError(f"Expected `host:port`, got `{printable(redacted_url(text), 80)}`", where)
    return parts.hostname, port


def _target(registration: Any, config: HealthCheckConfig, where: str) -> _Target:
    connection = registration.connection
    conn_endpoint = connection.endpoint if connection is not None else None
    endpoint = config.endpoint
    if endpoint is not None and endpoint.startswith(("http://", "https://")):
        url = endpoint
    elif endpoint is not None and endpoint.startswith("/"):
        if not conn_endpoint:
            raise RegistryError(f"Expected `connection.endpoint` to send `{printable(endpoint, 60)}` to, got none",
                                f"{where} $.health_check.endpoint")
        host, port = _host_port(conn_endpoint, None, f"{where} $.connection.endpoint")
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{port}{endpoint}"
    else:
        text = endpoint[len("tcp://"):] if endpoint is not None else conn_endpoint
        if not text:
            raise RegistryError("Expected `connection.endpoint` (or `health_check.endpoint`) to probe, got none",
                                f"{where} $.connection")
        at = f"{where} $.health_check.endpoint" if endpoint is not None else f"{where} $.connection.endpoint"
        host, port = _host_port(text, None, at)
        return _Target("tcp", host, port, shown=f"tcp {host}:{port}")
    if "${SECRET:" in url:
        raise RegistryError("Expected a URL the checker can send, got a `${SECRET:...}` reference in it "
                            "(prism_match never resolves secrets)", f"{where} $.health_check.endpoint")
    parts = urlsplit(url)
    host, port = _host_port(url, 443 if parts.scheme == "https" else 80, f"{where} $.health_check.endpoint")
    return _Target("http", host, port, url=url, shown=f"GET {printable(redacted_url(url), 120)}")


def _argv(command: str | Sequence[str], where: str) -> tuple[str, ...]:
    if isinstance(command, str):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise RegistryError(f"Expected a command line, got `{printable(command, 60)}` ({exc})", where) from None
    else:
        argv = tuple(command)
    if not argv:
        raise RegistryError("Expected a command, got an empty one", where)
    return argv


def _plan(registration: Any, config: HealthCheckConfig, allow_commands: bool) -> _Plan:
    backend_id = registration.backend_id
    where = f"backend `{printable(backend_id, 60)}`"
    commands: dict[str, tuple[str, ...]] = {}
    needs_target = False
    problems: list[tuple[str, str]] = []
    for index, check in enumerate(config.checks):
        at = f"{where} $.health_check.checks[{index}]"
        try:
            if check.command is not None:
                if not allow_commands:
                    raise RegistryError(
                        f"Check `{printable(check.name, 40)}` runs a command; commands run only when allowed "
                        "(HealthChecker(..., allow_commands=True), or `prism-match health --allow-commands`)", at)
                commands[check.name] = _argv(check.command, f"{at}.command")
            elif check.name in _ENDPOINT_CHECKS:
                needs_target = True
            else:
                raise RegistryError(
                    f"Expected a `command` for check `{printable(check.name, 40)}`: only `connectivity` and "
                    "`latency` read the endpoint probe", at)
        except RegistryError as exc:
            problems += exc.errors
    target = None
    if needs_target:
        try:
            target = _target(registration, config, where)
        except RegistryError as exc:
            problems += exc.errors
    if problems:
        raise RegistryError(problems)
    connection = registration.connection
    environment = {"PRISM_BACKEND_ID": backend_id}
    if connection is not None and connection.endpoint:
        environment["PRISM_ENDPOINT"] = connection.endpoint
    return _Plan(backend_id, config, target, commands, environment)


# --- the probes -------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return printable(str(exc) or type(exc).__name__, 120)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):  # the peer went first: nothing left to close
        pass


async def _tcp_probe(target: _Target) -> tuple[bool, str]:
    _, writer = await asyncio.open_connection(target.host, target.port)
    await _close(writer)
    return True, "connected"


async def _http_probe(target: _Target) -> tuple[bool, str]:
    parts = urlsplit(target.url)
    context = ssl.create_default_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(target.host, target.port, ssl=context,
                                                   limit=_HTTP_LINE_LIMIT)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.netloc.rpartition("@")[2]
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "User-Agent: prism-match-health",
                 "Accept: */*", "Connection: close"]
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append("Authorization: Basic " + base64.b64encode(credentials.encode()).decode())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
    finally:
        await _close(writer)
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        return False, "not an HTTP answer" if status_line else "closed without an answer"
    code = int(fields[1])
    return 200 <= code < 400, f"HTTP {code}"


async def _read_tail(stream: asyncio.StreamReader) -> bytes:
    tail = b""
    while chunk := await stream.read(65536):
        tail = (tail + chunk)[-_OUTPUT_TAIL:]
    return tail


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the command and whatever it started (its own session), so no
    grandchild keeps running past the timeout."""
    if process.returncode is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            process.kill()
    except ProcessLookupError:
        pass


async def _command_probe(argv: tuple[str, ...], environment: dict[str, str]) -> tuple[bool, str, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, **environment},
        start_new_session=hasattr(os, "killpg"))
    try:
        assert process.stdout is not None
        output = await _read_tail(process.stdout)
        code = await process.wait()
    finally:
        # Timed out or cancelled (the checker stopping): the command goes too.
        if process.returncode is None:
            _kill(process)
            await process.wait()
    if code < 0:
        return False, f"killed by signal {-code}", output
    return code == 0, f"exit {code}", output


def _value_from_output(check_name: str, output: bytes) -> float | None:
    """The last line of a command's output in the check's unit, or None."""
    lines = output.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return None
    text = lines[-1].strip()
    try:
        value = parse_threshold(float(text) if _NUMBER.fullmatch(text) else text)
    except ValueError:
        return None
    kind = type(value)
    if check_name == "latency" and kind is not ThresholdSeconds:
        return None  # a bare number of what? seconds and milliseconds are both common
    if check_name == "error_rate" and kind is ThresholdSeconds:
        return None
    return float(value)


# --- the checker ---------------------------------------------------------------------------

class HealthChecker:
    """Runs the registry's health checks and feeds a `HealthTracker`.

    ``registry``: a `prism_match.Registry`; every backend whose registration
    has a ``health_check`` block is probed (``default_check`` probes the
    others too). ``tracker``: where rounds go (by default a new
    `HealthTracker` writing through ``registry``, each backend judged by its
    own block). ``concurrency`` bounds the probes in flight. ``clock`` gives
    round times (timezone aware; UTC now by default).

    ``run_once()`` runs one round of every backend and returns its
    `BackendRound` list; ``await run(...)`` keeps each backend on its own
    interval until cancelled (or ``rounds`` rounds each); ``start()`` /
    ``stop()`` (or ``with checker:``) run it in a background thread with its
    own event loop, where ``run_once()`` is then also run.
    """

    def __init__(self, registry: Any, *, tracker: HealthTracker | None = None, allow_commands: bool = False,
                 concurrency: int = DEFAULT_CONCURRENCY, default_check: HealthCheckConfig | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RegistryError(f"Expected `concurrency` >= 1, got `{printable(concurrency, 40)}`", "HealthChecker")
        self.registry = registry
        self.tracker = tracker if tracker is not None else HealthTracker(registry)
        self.allow_commands = allow_commands
        self.concurrency = concurrency
        self.default_check = default_check
        self._clock = clock or (lambda: datetime.now(UTC))
        self._plans: dict[str, tuple[Any, _Plan]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None
        self._last_at: dict[str, datetime] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread_error: BaseException | None = None
        # Every block is read now, so a bad one is an error here rather than
        # a failed probe later; all problems at once.
        problems: list[tuple[str, str]] = []
        for backend_id in self._checked_ids():
            try:
                self._plan_for(backend_id)
            except RegistryError as exc:
                problems += exc.errors
        if problems:
            raise RegistryError(problems)

    # -- plans ---------------------------------------------------------------------------

    def _config_of(self, registration: Any) -> HealthCheckConfig | None:
        return registration.health_check if registration.health_check is not None else self.default_check

    def _checked_ids(self) -> list[str]:
        """The backends with a check to run, in the registry's order."""
        return [backend_id for backend_id in self.registry.backend_ids
                if self._config_of(self.registry[backend_id]) is not None]

    def _plan_for(self, backend_id: str) -> _Plan | None:
        registration = self.registry[backend_id]
        config = self._config_of(registration)
        if config is None:
            return None
        key = (config, registration.connection)
        cached = self._plans.get(backend_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = _plan(registration, config, self.allow_commands)
        self._plans[backend_id] = (key, plan)
        return plan

    @property
    def backend_ids(self) -> list[str]:
        """The backends this checker probes."""
        return self._checked_ids()

    # -- one backend, one round ------------------------------------------------------------

    def _limit(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            self._semaphore, self._semaphore_loop = asyncio.Semaphore(self.concurrency), loop
        return self._semaphore

    async def _timed(self, probe: Any, timeout: float) -> tuple[str, float | None, str, Any]:
        """``(outcome, latency, detail, extra)`` of one probe under the timeout and the concurrency bound."""
        async with self._limit():
            started = time.perf_counter()
            try:
                answer = await asyncio.wait_for(probe, timeout)
            except TimeoutError:
                return "timeout", None, f"no answer within {timeout:g}s", None
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
                return "fail", None, _reason(exc), None
            except Exception as exc:  # a probe that cannot run at all (a bad host name encoding, …)
                return "error", None, _reason(exc), None
            latency = time.perf_counter() - started
        ok, detail, *extra = answer
        return ("pass" if ok else "fail"), latency, detail, (extra[0] if extra else None)

    async def _probe_backend(self, plan: _Plan) -> list[ProbeResult]:
        timeout = plan.config.timeout
        jobs: dict[str, Any] = {}
        if plan.target is not None:
            probe = _tcp_probe(plan.target) if plan.target.kind == "tcp" else _http_probe(plan.target)
            jobs[""] = self._timed(probe, timeout)
        for name, argv in plan.commands.items():
            jobs[name] = self._timed(_command_probe(argv, plan.environment), timeout)
        answers = dict(zip(jobs, await asyncio.gather(*jobs.values())))
        results = []
        for check in plan.config.checks:
            if check.name in plan.commands:
                outcome, latency, detail, output = answers[check.name]
                value = _value_from_output(check.name, output) if output is not None else None
                shown = "command " + printable(shlex.join(plan.commands[check.name]), 80)
            else:
                outcome, latency, detail, _ = answers[""]
                value = latency
                shown = plan.target.shown if plan.target is not None else ""
            results.append(ProbeResult(check.name, shown, outcome, latency, value, detail))
        return results

    def _at(self, backend_id: str) -> datetime:
        # The tracker needs each backend's times in order: a wall clock that
        # steps back (NTP) must not make a round an error.
        at = self._clock()
        last = self._last_at.get(backend_id)
        if last is not None and at < last:
            at = last
        self._last_at[backend_id] = at
        return at

    async def _round(self, backend_id: str) -> BackendRound | None:
        try:
            plan = self._plan_for(backend_id)
        except KeyError:  # removed from the registry meanwhile
            self.tracker.forget(backend_id)
            return None
        except RegistryError as exc:  # a backend added since, with a block that cannot run
            at = self._at(backend_id)
            status = self.tracker.status(backend_id)
            return BackendRound(backend_id, at, (ProbeResult("", "", "error", None, None, str(exc)),), status, status)
        if plan is None:
            return None
        at = self._at(backend_id)
        results = await self._probe_backend(plan)
        if backend_id not in self.registry:
            self.tracker.forget(backend_id)
            return None
        before = self.tracker.status(backend_id)
        checks = [CheckResult(name=r.check, at=at, ok=r.ok, value=r.value) for r in results]
        after = self.tracker.record(backend_id, checks, at)
        return BackendRound(backend_id, at, tuple(results), before, after)

    # -- rounds --------------------------------------------------------------------------------

    async def run_once_async(self, backend_ids: Iterable[str] | None = None) -> list[BackendRound]:
        """One round of every checked backend (or of ``backend_ids``), concurrently; in registry order."""
        ids = list(backend_ids) if backend_ids is not None else self._checked_ids()
        rounds = await asyncio.gather(*(self._round(backend_id) for backend_id in ids))
        return [r for r in rounds if r is not None]

    def run_once(self, backend_ids: Iterable[str] | None = None) -> list[BackendRound]:
        """`run_once_async` from synchronous code (on the background loop when started)."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            return asyncio.run_coroutine_threadsafe(self.run_once_async(backend_ids), self._loop).result()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run_once_async(backend_ids))
        raise RegistryError("run_once() blocks: inside an event loop, `await checker.run_once_async()`",
                            "HealthChecker")

    async def run(self, *, rounds: int | None = None, on_round: Callable[[BackendRound], Any] | None = None,
                  backend_ids: Iterable[str] | None = None) -> None:
        """Probe every backend on its own ``interval`` until cancelled (or
        ``rounds`` rounds each); ``on_round`` sees each backend's round;
        ``backend_ids`` limits the checks to those backends.

        A round starts ``interval`` after the previous one started, or at
        once when it took longer. Backends added to the registry meanwhile
        are picked up at the next sweep (every second); removed ones stop.
        """
        tasks: dict[str, asyncio.Task] = {}
        only = set(backend_ids) if backend_ids is not None else None

        async def keep_checking(backend_id: str) -> None:
            done = 0
            while rounds is None or done < rounds:
                started = time.monotonic()
                try:
                    result = await self._round(backend_id)
                except Exception:
                    # One failed write (the tracker retries a refused update
                    # on the next round) must not end every backend's checks.
                    _log.exception("health round of %s failed", printable(backend_id, 60))
                else:
                    if result is None:  # the backend left the registry
                        return
                    if on_round is not None:
                        on_round(result)
                done += 1
                plan = self._plans.get(backend_id)
                interval = plan[1].config.interval if plan is not None else 1.0
                if rounds is not None and done >= rounds:
                    return
                await asyncio.sleep(max(0.0, started + interval - time.monotonic()))

        try:
            while True:
                for backend_id in self._checked_ids():
                    if backend_id not in tasks and (only is None or backend_id in only):
                        tasks[backend_id] = asyncio.create_task(keep_checking(backend_id))
                if rounds is not None and all(task.done() for task in tasks.values()):
                    return
                await asyncio.sleep(1.0 if rounds is None else 0.01)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    # -- a background thread -------------------------------------------------------------------

    def start(self) -> HealthChecker:
        """Run `run()` in a daemon thread with its own event loop; returns self."""
        if self._thread is not None and self._thread.is_alive():
            raise RegistryError("This checker is already running", "HealthChecker")
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._task = loop.create_task(self.run())
            loop.call_soon(ready.set)
            try:
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # kept for stop() to raise in the caller's thread
                self._thread_error = exc
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread_error = None
        self._thread = threading.Thread(target=main, name="prism-match-health", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the background run (probes in flight end, commands are
        killed) and wait for the thread; raises what the run raised, if anything."""
        thread, loop, task = self._thread, self._loop, self._task
        if thread is None or loop is None or task is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(task.cancel)
            thread.join(timeout)
        self._thread = self._loop = self._task = None
        error, self._thread_error = self._thread_error, None
        if error is not None:
            raise error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> HealthChecker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
