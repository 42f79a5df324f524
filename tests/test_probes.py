"""Tests for `prism_match.probes` and ``prism-match health``: real probes
against real listeners started here on 127.0.0.1 (a TCP server, a small HTTP
server, a server that accepts and never answers, commands that fail or hang),
written through the registry (`registry[id].health`) and seen by `match`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
import yaml

import prism_match as pm
from prism_match.cli import main
from prism_match.errors import RegistryError
from prism_match.loading import load_registrations
from prism_match.health import read_health_check
from prism_match.schema import encode_hook

SEED_HEALTH_CHECK = Path(__file__).parent / "data" / "seed" / "health-check.yaml"
FAST = {"interval": "1s", "timeout": "200ms", "healthy_threshold": 2, "unhealthy_threshold": 2}
PY = sys.executable


# --- listeners ---------------------------------------------------------------------------------

class TcpServer:
    """Accepts connections and closes them; counts them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        # shutdown wakes the thread blocked in accept(); close alone would
        # leave the port listening until it returns.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class SilentServer:
    """Accepts connections and never answers (an HTTP GET to it hangs)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        # shutdown wakes the thread blocked in accept(); close alone would
        # leave the port listening until it returns.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self.held:
            conn.close()


class HttpServer:
    """``/ok`` 200, ``/moved`` 302, ``/fail`` 500, ``/together`` 200 once
    ``together`` requests are waiting at the same time; remembers headers."""

    def __init__(self, together: int = 1):
        barrier = threading.Barrier(together, timeout=5)
        seen = self.headers = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(dict(self.headers))
                if self.path == "/together":
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        self.send_response(503)
                        self.end_headers()
                        return
                code = {"/ok": 200, "/moved": 302, "/together": 200}.get(self.path, 500)
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", "/ok")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tcp_server():
    server = TcpServer()
    yield server
    server.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def http_server():
    server = HttpServer()
    yield server
    server.close()


@pytest.fixture
def closed_port():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def backend(backend_id, health_check=None, endpoint=None, **extra):
    doc = {"backend_id": backend_id, "backend_type": "redis", **extra}
    if endpoint is not None:
        doc["connection"] = {"endpoint": endpoint}
    if health_check is not None:
        doc["health_check"] = health_check
    return doc


def command_check(name, code, **extra):
    return {"name": name, "command": [PY, "-c", code], **extra}


class Clock:
    """Round times under the test's control: `tick` moves to the next interval."""

    def __init__(self, start=datetime(2026, 1, 1, tzinfo=UTC), step=timedelta(seconds=30)):
        self.now, self.step = start, step

    def __call__(self):
        return self.now

    def tick(self):
        self.now += self.step


def eventually(condition, tries=500):
    """Poll ``condition`` (up to about 5 s) for what another thread does; never a timing assertion."""
    for _ in range(tries):
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def outcomes(rounds):
    return {r.backend_id: [(p.check, p.outcome, p.detail) for p in r.results] for r in rounds}


def statuses(rounds):
    return {r.backend_id: (r.status_before, r.status_after) for r in rounds}


# --- the health_check block in a registration ---------------------------------------------

def test_seed_health_check_block_loads_inside_a_registration():
    block = yaml.safe_load(SEED_HEALTH_CHECK.read_text())["health_check"]
    registry = pm.load_registry([backend("kafka-a", block, "kafka-a.prism.local:9092")])
    assert registry["kafka-a"].health_check == read_health_check(block)
    assert [c.threshold for c in registry["kafka-a"].health_check.checks] == [None, 0.1, 1.0]


def test_health_check_block_round_trips_through_json(tmp_path):
    block = {**FAST, "endpoint": "/health",
             "checks": [{"name": "connectivity"}, {"name": "latency", "threshold": "100ms"},
                        {"name": "error_rate", "threshold": "1%", "command": "check --rate"},
                        {"name": "replica_lag", "threshold": 5, "command": ["lag", "--max", "5"]}]}
    regs = list(pm.load_registry([backend("a", block, "a.local:1")]))
    path = tmp_path / "a.json"
    path.write_bytes(msgspec.json.encode(regs, enc_hook=encode_hook))
    assert list(pm.load_registry(path)) == regs


def test_bad_health_check_block_is_located_in_the_registry():
    with pytest.raises(RegistryError) as caught:
        pm.load_registry([backend("a", {"interval": 30, "checks": [{"name": "latency", "threshold": "5%"}]})])
    assert caught.value.errors == [
        ("<input> $[0].health_check.interval",
         "Expected a duration with a unit such as `30s` or `100ms`, got the bare number `30`"),
        ("<input> $[0].health_check.checks[0].threshold",
         "Expected a duration such as `100ms` for a `latency` threshold, got the percentage `5%`"),
    ]


def test_inline_password_in_a_probe_url_is_refused_and_never_shown(http_server):
    url = f"http://probe:hunter2@127.0.0.1:{http_server.port}/ok"
    with pytest.raises(RegistryError, match=r"Inline secret in .*`endpoint`") as caught:
        pm.load_registry([backend("a", {**FAST, "endpoint": url})])
    assert "hunter2" not in str(caught.value)

    registry = pm.load_registry([backend("a", {**FAST, "endpoint": url})], allow_inline_secrets=True)
    assert "hunter2" not in repr(registry["a"])
    [result] = pm.HealthChecker(registry).run_once()
    assert result.results[0].probe == f"GET http://probe:***redacted***@127.0.0.1:{http_server.port}/ok"
    assert result.results[0].outcome == "pass"
    assert http_server.headers[-1]["Authorization"] == "Basic cHJvYmU6aHVudGVyMg=="  # probe:hunter2


# --- real probes -------------------------------------------------------------------------------

def test_tcp_probe_against_a_listener_and_a_closed_port(tcp_server, closed_port):
    registry = pm.load_registry([backend("up", FAST, f"127.0.0.1:{tcp_server.port}"),
                                 backend("down", FAST, f"127.0.0.1:{closed_port}"),
                                 backend("unchecked", None, f"127.0.0.1:{closed_port}")])
    checker = pm.HealthChecker(registry, clock=Clock())
    assert checker.backend_ids == ["up", "down"]
    first = checker.run_once()
    assert outcomes(first) == {"up": [("connectivity", "pass", "connected")],
                               "down": [("connectivity", "fail", "connection refused")]}
    assert statuses(first) == {"up": ("unknown", "unknown"), "down": ("unknown", "unknown")}
    # healthy_threshold and unhealthy_threshold are 2: the second round decides.
    assert statuses(checker.run_once()) == {"up": ("unknown", "healthy"), "down": ("unknown", "unhealthy")}
    assert eventually(lambda: tcp_server.accepted == 2)  # the accept thread may lag the client
    assert first[0].results[0].latency > 0 and first[1].results[0].latency is None
    assert (registry["up"].health.status, registry["down"].health.status) == ("healthy", "unhealthy")
    assert registry["unchecked"].health is None


def test_http_probe_passes_on_2xx_and_3xx_and_fails_on_5xx(http_server):
    one = {**FAST, "healthy_threshold": 1, "unhealthy_threshold": 1}
    registry = pm.load_registry([
        backend("ok", {**one, "endpoint": "/ok"}, f"127.0.0.1:{http_server.port}"),  # a path on the endpoint
        backend("moved", {**one, "endpoint": http_server.url("/moved")}),
        backend("fail", {**one, "endpoint": http_server.url("/fail")}),
    ])
    rounds = pm.HealthChecker(registry).run_once()
    assert outcomes(rounds) == {"ok": [("connectivity", "pass", "HTTP 200")],
                                "moved": [("connectivity", "pass", "HTTP 302")],
                                "fail": [("connectivity", "fail", "HTTP 500")]}
    assert rounds[0].results[0].probe == f"GET http://127.0.0.1:{http_server.port}/ok"
    assert [r.status_after for r in rounds] == ["healthy", "healthy", "unhealthy"]


def test_latency_check_reads_the_endpoint_probe_and_degrades_above_its_threshold(http_server):
    block = {**FAST, "healthy_threshold": 1, "endpoint": http_server.url("/ok"),
             "checks": [{"name": "connectivity"}, {"name": "latency", "threshold": "1ns"}]}
    registry = pm.load_registry([backend("slow", block)])
    [result] = pm.HealthChecker(registry).run_once()
    latency = result.results[1]
    assert (latency.check, latency.outcome, latency.value) == ("latency", "pass", latency.latency)
    assert result.status_after == "degraded"
    [incident] = registry["slow"].health.recent_incidents
    assert incident.severity == "warning" and incident.description.startswith("`slow` degraded: latency ")


def test_command_probes_exit_status_and_printed_value(tmp_path):
    one = {**FAST, "healthy_threshold": 1, "unhealthy_threshold": 1}
    registry = pm.load_registry([
        backend("fails", {**one, "checks": [command_check("connectivity", "raise SystemExit(1)")]}),
        backend("passes", {**one, "checks": [command_check("connectivity", "pass")]}),
        backend("errors", {**one, "checks": [
            command_check("connectivity", "import os; assert os.environ['PRISM_BACKEND_ID'] == 'errors'"),
            command_check("error_rate", "print('noise'); print('2.5%')", threshold="1%")]}),
        backend("missing", {**one, "checks": [{"name": "connectivity", "command": [str(tmp_path / "nope")]}]}),
    ])
    rounds = pm.HealthChecker(registry, allow_commands=True).run_once()
    assert outcomes(rounds) == {
        "fails": [("connectivity", "fail", "exit 1")],
        "passes": [("connectivity", "pass", "exit 0")],
        "errors": [("connectivity", "pass", "exit 0"), ("error_rate", "pass", "exit 0")],
        "missing": [("connectivity", "fail", "no such file or directory")],
    }
    assert rounds[2].results[1].value == 2.5
    assert [r.status_after for r in rounds] == ["unhealthy", "healthy", "degraded", "unhealthy"]
    assert registry["errors"].health.recent_incidents[0].description == "`errors` degraded: error_rate 2.5% > 1%"


def test_commands_run_only_when_allowed():
    block = yaml.safe_load(SEED_HEALTH_CHECK.read_text())["health_check"]
    registry = pm.load_registry([backend("kafka-a", block, "kafka-a.prism.local:9092")])
    with pytest.raises(RegistryError) as caught:
        pm.HealthChecker(registry)
    assert len(caught.value.errors) == 3
    assert caught.value.errors[0] == (
        "backend `kafka-a` $.health_check.checks[0]",
        "Check `connectivity` runs a command; commands run only when allowed "
        "(HealthChecker(..., allow_commands=True), or `prism-match health --allow-commands`)")


@pytest.mark.parametrize(("block", "endpoint", "location", "message"), [
    ({"checks": [{"name": "error_rate"}]}, "a:1", "backend `a` $.health_check.checks[0]",
     "Expected a `command` for check `error_rate`: only `connectivity` and `latency` read the endpoint probe"),
    ({}, None, "backend `a` $.connection",
     "Expected `connection.endpoint` (or `health_check.endpoint`) to probe, got none"),
    ({}, "just-a-host", "backend `a` $.connection.endpoint", "Expected `host:port`, got `just-a-host`"),
    ({"endpoint": "/health"}, None, "backend `a` $.health_check.endpoint",
     "Expected `connection.endpoint` to send `/health` to, got none"),
])
def test_blocks_that_cannot_run_are_errors_when_the_checker_is_built(block, endpoint, location, message):
    registry = pm.load_registry([backend("a", block, endpoint)])
    with pytest.raises(RegistryError) as caught:
        pm.HealthChecker(registry)
    assert caught.value.errors == [(location, message)]


def test_hanging_probes_time_out_and_the_round_still_ends(http_server, silent_server, tmp_path):
    """20 probes, 5 of which hang past a 0.2 s timeout: an HTTP GET to a
    server that never answers, and a command whose child sleeps (both killed)."""
    pid_file = tmp_path / "grandchild.pid"
    sleeper = ("import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', 'import time; "
               f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); child.wait()")
    # The answering probes get a long timeout: on a loaded machine they must not be cut by it.
    docs = [backend(f"fast-{i:02d}", {**FAST, "timeout": "10s", "endpoint": http_server.url("/ok")})
            for i in range(15)]
    docs += [backend(f"hang-{i}", {**FAST, "endpoint": f"http://127.0.0.1:{silent_server.port}/"}) for i in range(4)]
    docs.append(backend("hang-command", {**FAST, "checks": [command_check("connectivity", sleeper)]}))
    registry = pm.load_registry(docs)
    rounds = pm.HealthChecker(registry, allow_commands=True, concurrency=8).run_once()
    by_outcome: dict[str, list[str]] = {}
    for r in rounds:
        by_outcome.setdefault(r.results[0].outcome, []).append(r.backend_id)
    assert by_outcome == {"pass": [f"fast-{i:02d}" for i in range(15)],
                          "timeout": ["hang-0", "hang-1", "hang-2", "hang-3", "hang-command"]}
    assert rounds[-1].results[0].detail == "no answer within 0.2s"
    # The command's own child was killed with it (its session), not left running.
    grandchild = int(pid_file.read_text())
    for _ in range(200):
        stat = Path(f"/proc/{grandchild}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"process {grandchild} still runs after its probe timed out")


def test_probes_run_concurrently():
    """The server answers only once 5 requests wait at the same time: probes
    run one after another would each time out instead."""
    server = HttpServer(together=5)
    try:
        registry = pm.load_registry([backend(f"b{i}", {**FAST, "timeout": "5s", "endpoint": server.url("/together")})
                                     for i in range(5)])
        rounds = pm.HealthChecker(registry).run_once()
        assert [r.results[0].detail for r in rounds] == ["HTTP 200"] * 5
    finally:
        server.close()


# --- through the registry -------------------------------------------------------------------

def test_statuses_incidents_and_last_check_reach_the_registry_and_match(tcp_server):
    dark = TcpServer()
    registry = pm.load_registry([
        backend("primary", FAST, f"127.0.0.1:{dark.port}", health={"status": "healthy", "uptime_percent_24h": 99.0}),
        backend("secondary", FAST, f"127.0.0.1:{tcp_server.port}"),
    ])
    slot = {"slot_name": "cache"}
    assert [m.backend_id for m in registry.match(slot, k=2)] == ["primary", "secondary"]
    clock = Clock()
    checker = pm.HealthChecker(registry, clock=clock)
    checker.run_once()
    assert registry["primary"].health.last_check_at == clock.now
    first_check = clock.now

    # The primary's listener goes away: two failed rounds make it unhealthy.
    dark.close()
    clock.tick()
    checker.run_once()
    assert registry["primary"].health.status == "healthy"  # one failed round is not enough
    clock.tick()
    [primary, _] = checker.run_once()
    assert (primary.status_before, primary.status_after) == ("healthy", "unhealthy")
    live = registry["primary"].health
    assert live.status == "unhealthy" and live.last_check_at == clock.now > first_check
    assert live.uptime_percent_24h == pytest.approx(100 / 3)
    [incident] = live.recent_incidents
    assert (incident.severity, incident.started_at, incident.is_open) == ("critical", clock.now, True)
    assert incident.description == "`primary` unhealthy: 2 consecutive failed rounds"
    assert [m.backend_id for m in registry.match(slot, k=2)] == ["secondary"]
    assert registry.to_polars().filter(backend_id="primary")["health_status"].to_list() == ["unhealthy"]


def test_registry_item_is_the_stored_registration_until_something_changes():
    docs = [backend("a", FAST, "127.0.0.1:1", health={"status": "degraded", "uptime_percent_24h": 90.0})]
    registry = pm.load_registry(docs)
    stored = registry["a"]
    # Made anew from the kept record on each call: equal, not the same object.
    assert registry["a"] == stored == load_registrations(docs)[0]
    registry.update("a", status="healthy", uptime=99.5)
    assert (registry["a"].health.status, registry["a"].health.uptime_percent_24h) == ("healthy", 99.5)
    assert registry["a"].backend_id == "a" and registry["a"].health_check == stored.health_check
    with pytest.raises(RegistryError, match=r"Unknown backend `nope` - at record_health"):
        registry.record_health("nope", checked_at=datetime.now(UTC))


def test_tracker_starts_from_the_registered_status():
    registry = pm.load_registry([backend("m", {**FAST, "healthy_threshold": 1}, "127.0.0.1:1",
                                         health={"status": "maintenance"})])
    tracker = pm.HealthTracker(registry)
    assert tracker.status("m") == "maintenance"
    assert tracker.config is None and tracker.config_for("m").healthy_threshold == 1


# --- running in the background and as an asyncio task ---------------------------------------

def test_start_and_stop_a_background_checker(tcp_server, tmp_path):
    marker = tmp_path / "started"
    registry = pm.load_registry([
        backend("up", {**FAST, "interval": "50ms"}, f"127.0.0.1:{tcp_server.port}"),
        backend("slow", {**FAST, "timeout": "30s", "checks": [
            command_check("connectivity", f"open({str(marker)!r}, 'w').close(); import time; time.sleep(60)")]}),
    ])
    with pm.HealthChecker(registry, allow_commands=True) as checker:
        assert checker.running
        for _ in range(500):
            health = registry["up"].health
            if health is not None and health.status == "healthy" and marker.exists():
                break
            time.sleep(0.01)
        assert registry["up"].health.status == "healthy"
        seen = registry["up"].health.last_check_at
        for _ in range(500):
            if registry["up"].health.last_check_at > seen:
                break
            time.sleep(0.01)
        assert registry["up"].health.last_check_at > seen
        # run_once while running goes to the checker's own loop
        assert [r.backend_id for r in checker.run_once(["up"])] == ["up"]
    assert not checker.running
    assert registry["slow"].health is None  # its 60 s command was cut by stop(), no round recorded


def test_run_as_an_asyncio_task(tcp_server):
    registry = pm.load_registry([backend(f"b{i}", {**FAST, "interval": "10ms"}, f"127.0.0.1:{tcp_server.port}")
                                 for i in range(3)])
    checker = pm.HealthChecker(registry)
    seen = []
    asyncio.run(checker.run(rounds=2, on_round=seen.append))
    assert sorted(r.backend_id for r in seen) == ["b0", "b0", "b1", "b1", "b2", "b2"]
    assert {registry[f"b{i}"].health.status for i in range(3)} == {"healthy"}

    async def inside_a_loop():
        with pytest.raises(RegistryError, match=r"await checker.run_once_async\(\)"):
            checker.run_once()
        return await checker.run_once_async()

    assert len(asyncio.run(inside_a_loop())) == 3


# --- the command line --------------------------------------------------------------------------

def write_registry(path, docs):
    path.write_text(yaml.safe_dump(docs))
    return str(path)


def test_cli_health_round_as_a_table_and_as_json(tmp_path, capsys, http_server, closed_port):
    path = write_registry(tmp_path / "r.yaml", [
        backend("web", {**FAST, "unhealthy_threshold": 1, "endpoint": http_server.url("/fail")}),
        backend("db", FAST, f"127.0.0.1:{closed_port}"),
        backend("plain"),
    ])
    assert main(["health", path]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["backend", "check", "probe", "result", "latency", "status"]
    assert ["web", "connectivity", "GET", http_server.url("/fail"), "fail", "(HTTP", "500)"] == lines[2][:7]
    assert lines[2][-3:] == ["unknown", "→", "unhealthy"]
    assert lines[3][:4] == ["db", "connectivity", "tcp", f"127.0.0.1:{closed_port}"]
    assert lines[3][-3:] == ["unknown", "→", "unknown"]

    assert main(["health", path, "--format", "json", "--backend", "db"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert (doc["backend_id"], doc["checks"][0]["outcome"], doc["checks"][0]["detail"]) == \
        ("db", "fail", "connection refused")


def test_cli_health_watch_rounds(tmp_path, capsys, tcp_server):
    path = write_registry(tmp_path / "r.yaml", [
        backend("a", {**FAST, "interval": "10ms"}, f"127.0.0.1:{tcp_server.port}"),
        backend("b", {**FAST, "interval": "10ms"}, f"127.0.0.1:{tcp_server.port}"),
    ])
    assert main(["health", path, "--watch", "--rounds", "2", "--format", "json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((d["backend_id"], d["status_after"]) for d in docs) == \
        [("a", "healthy"), ("a", "unknown"), ("b", "healthy"), ("b", "unknown")]


@pytest.mark.parametrize(("docs", "argv", "message"), [
    ([backend("plain")], [], "error: No backend has a `health_check` block to run - at "),
    ([backend("a", {"checks": [command_check("connectivity", "pass")]})], [],
     "error: Check `connectivity` runs a command; commands run only when allowed"),
    ([backend("a", FAST, "127.0.0.1:1")], ["--backend", "zz"],
     "error: Expected a backend with a `health_check` block, got `zz` - at command line --backend"),
    ([backend("a", FAST, "127.0.0.1:1")], ["--watch", "--rounds", "0"],
     "error: Expected `--rounds` >= 1, got `0` - at command line"),
])
def test_cli_health_errors(tmp_path, capsys, docs, argv, message):
    path = write_registry(tmp_path / "r.yaml", docs)
    assert main(["health", path, *argv]) == 1
    assert capsys.readouterr().err.startswith(message)


def test_cli_health_runs_commands_when_allowed(tmp_path, capsys):
    path = write_registry(tmp_path / "r.yaml", [
        backend("a", {**FAST, "unhealthy_threshold": 1, "checks": [command_check("connectivity", "raise SystemExit(3)")]}),
    ])
    assert main(["health", path, "--allow-commands", "--format", "json"]) == 0
    [doc] = json.loads(capsys.readouterr().out)
    assert (doc["checks"][0]["detail"], doc["status_after"]) == ("exit 3", "unhealthy")
    assert os.path.basename(PY) in doc["checks"][0]["probe"]



def test_a_failed_write_is_logged_and_checking_goes_on(tcp_server, caplog):
    registry = pm.load_registry([backend("a", {**FAST, "interval": "10ms", "healthy_threshold": 1},
                                         f"127.0.0.1:{tcp_server.port}")])
    real_update, refused = registry.update, []

    def update_refused_once(backend_id, **live):
        if not refused:
            refused.append(backend_id)
            raise RuntimeError("registry busy")
        return real_update(backend_id, **live)

    registry.update = update_refused_once
    seen = []
    asyncio.run(pm.HealthChecker(registry).run(rounds=2, on_round=seen.append))
    assert refused == ["a"] and [(r.status_before, r.status_after) for r in seen] == [("unknown", "healthy")]
    assert registry["a"].health.status == "healthy"
    assert "health round of a failed" in caplog.text and "registry busy" in caplog.text
