#!/usr/bin/env python3
"""The whole-system benchmark's driver (Python 3 stdlib only); `project/bench/run.sh` builds the
binaries and runs this. See that script for the usage.

It starts the five services, a bare actix-web echo and an SMTP catcher of its own on ports
18280-18289, with their own RabbitMQ exchange and queues, MongoDB and PostgreSQL databases, on
the machine's PostgreSQL, RabbitMQ and MongoDB wire server (never restarted). For each path it
runs wrk and reads the utime+stime of every process involved from /proc/<pid>/stat before and
after, divided by the requests answered. A measurement starts once every event published so
far is stored (the listener's count has caught up with the broker's) and ends once it has
again, so the events a path publishes are paid for in the same row that published them.
"""

import argparse
import datetime
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "project" / "bench"
TICK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"

# The benchmark's own block: not the stack's 80xx, not an offset stack's 180xx / 280xx, not
# service-kit/bench's 18290-18291.
PORTS = {
    "broker": 18280,
    "echo": 18281,
    "authentication": 18283,
    "logger": 18284,
    "mailer": 18285,
    "listener": 18286,
    "logger_rpc": 18287,
    "smtp": 18288,
    "smtp_web": 18289,
}
# Fixed names, so repeated runs reuse them instead of piling them up; cleared at the start.
EXCHANGE, QUEUE, MAIL_EXCHANGE, MAIL_QUEUE = "bench_logs_topic", "bench_logs", "bench_mail", "bench_mail"
MONGO_DB, STORE_DB, POSTGRES_DB = "bench_logs", "bench_store", "bench_users"
BCRYPT_COST = 4
SHARED = {"rabbitmq": 5672, "mongo": 27017, "postgres": 5432}

# The columns of the table: each process whose CPU is read, in order.
COLUMNS = [
    ("echo", "echo"),
    ("broker", "broker"),
    ("authentication", "auth"),
    ("logger", "logger"),
    ("listener", "listener"),
    ("mailer", "mailer"),
    ("smtp", "SMTP (maildev)"),
    ("rabbitmq", "RabbitMQ"),
    ("mongo", "MongoDB (SecantusDB)"),
    ("postgres", "PostgreSQL"),
    ("probe", "probe"),
]
EVENT_PIPELINE = ["broker", "rabbitmq", "listener", "logger", "mongo"]

LOG = {"name": "bench", "data": "load test"}


def log(message):
    print(f"[bench] {message}", flush=True)


class Failure(Exception):
    pass


# --- processes -------------------------------------------------------------------------------


class Processes:
    """The processes this run started: stopped by pid (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.started = {}

    def start(self, name, command, env):
        out = open(self.log_dir / f"{name}.log", "wb")
        full_env = {**os.environ, **env}
        process = subprocess.Popen(
            command, env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=ROOT,
        )
        self.started[name] = process
        return process

    def pid(self, name):
        return self.started[name].pid

    def check_alive(self):
        for name, process in self.started.items():
            if process.poll() is not None:
                raise Failure(f"{name} exited (status {process.returncode}); its log: {self.log_dir / name}.log\n"
                              + tail(self.log_dir / f"{name}.log"))

    def stop_all(self):
        for process in self.started.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.started.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def tail(path, lines=15):
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def http(method, url, body=None, headers=None, timeout=5):
    """(status, body text) of one request; (0, reason) when nothing answers."""
    request = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def wait_ready(processes, name, url, method="GET", seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        processes.check_alive()
        status, _ = http(method, url, body="" if method == "POST" else None, timeout=2)
        if status == 200:
            return
        time.sleep(0.1)
    raise Failure(f"{name} not ready after {seconds}s ({url}); its log:\n" + tail(processes.log_dir / f"{name}.log"))


def run_quiet(command, timeout=60, env=None):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    return result.returncode, result.stdout + result.stderr


# --- CPU time --------------------------------------------------------------------------------


def cpu_of(pid):
    """utime + stime of every thread of pid, in seconds (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def listening_pid(port):
    """The pid of the process listening on a TCP port of this machine (ss, as root)."""
    code, out = run_quiet(["ss", "-ltnpH", f"sport = :{port}"], timeout=10)
    match = re.search(r"pid=(\d+)", out)
    if code != 0 or not match:
        raise Failure(f"no process found listening on port {port} (is the infrastructure up? "
                      f"`bash project/infra.sh up`): {out.strip()}")
    return int(match.group(1))


def postgres_backends(postmaster):
    """pid -> CPU of the PostgreSQL backends serving the benchmark's database: the others
    (other people's tests on the shared server) are not counted."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[1]) != postmaster:
                continue
            cmdline = (entry / "cmdline").read_text().replace("\0", " ")
        except (OSError, ValueError):
            continue
        if f" {POSTGRES_DB} " in f" {cmdline} ":
            cpu = cpu_of(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


class Cpu:
    def __init__(self, pids, postmaster):
        self.pids, self.postmaster = pids, postmaster

    def snapshot(self):
        values = {name: cpu_of(pid) for name, pid in self.pids.items()}
        values["postgres"] = postgres_backends(self.postmaster)
        return values

    @staticmethod
    def spent(before, after):
        """name -> CPU seconds between two snapshots (a backend that appeared in between counts
        from its start)."""
        spent = {}
        for name, value in after.items():
            if name == "postgres":
                spent[name] = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in value.items())
            elif value is not None and before.get(name) is not None:
                spent[name] = value - before[name]
        return spent


# --- the system's own counters ---------------------------------------------------------------


def metric_sum(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
            total += float(value)
    return total


def metrics(port):
    status, text = http("GET", f"http://{HOST}:{port}/metrics")
    if status != 200:
        raise Failure(f"GET /metrics on port {port} answered {status}: {text[:200]}")
    return text


def published_and_settled():
    """(events the broker published and RabbitMQ confirmed, of those the listener settled:
    stored or dead-lettered)."""
    published = metric_sum(metrics(PORTS["broker"]), "broker_events_published_total", outcome="ok")
    listener = metrics(PORTS["listener"])
    settled = (metric_sum(listener, "listener_deliveries_stored_total")
               + metric_sum(listener, "listener_deliveries_dead_lettered_total"))
    return published, settled


def wait_settled(processes, seconds=180):
    """Until every event published so far is stored; the number published."""
    deadline = time.monotonic() + seconds
    while True:
        published, settled = published_and_settled()
        if settled >= published:
            return published
        if time.monotonic() > deadline:
            raise Failure(f"{published - settled:.0f} of {published:.0f} published events not stored after {seconds}s")
        processes.check_alive()
        time.sleep(0.05)


def dead_lettered():
    return metric_sum(metrics(PORTS["listener"]), "listener_deliveries_dead_lettered_total")


# --- wrk -------------------------------------------------------------------------------------


def wrk(url, clients, duration, body="", token="", limit=0, until=None):
    """wrk's RESULT line as a dict. With `until` (a function), wrk is interrupted (SIGINT: it prints
    its summary) as soon as until() is true: a thread stopped by LIMIT still waits out -d."""
    env = {"BODY": body, "TOKEN": token, "LIMIT": str(limit)}
    command = ["wrk", "-t2", f"-c{clients}", f"-d{duration}", "--timeout", "10s", "--latency",
               "-s", str(HERE / "post.lua"), url]
    deadline = time.monotonic() + parse_seconds(duration) + 60
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env})
    try:
        while until is not None and process.poll() is None and not until():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if until is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise Failure(f"wrk failed ({process.returncode}): {stdout[-500:]} {stderr[-500:]}")
    head, _, first_bad = line.partition(" first_bad=")
    values = {key: int(value) for key, value in (pair.split("=", 1) for pair in head.split()[1:])}
    values["first_bad"] = first_bad.strip()
    return values


def parse_seconds(duration):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", duration)
    if not match:
        raise SystemExit(f"not a duration: {duration} (e.g. 10s)")
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[match.group(2)]


# --- the run ---------------------------------------------------------------------------------


def prepare_servers():
    """Empty databases and queues of the benchmark's own names on the shared servers."""
    pg_env = {"PGPASSWORD": "password", "PGCONNECT_TIMEOUT": "5"}
    for sql in [f"DROP DATABASE IF EXISTS {POSTGRES_DB} WITH (FORCE)", f"CREATE DATABASE {POSTGRES_DB}"]:
        code, out = run_quiet(["psql", "-h", HOST, "-U", "postgres", "-d", "postgres", "-qc", sql], env=pg_env)
        if code != 0:
            raise Failure(f"psql {sql!r}: {out.strip()}")
    # Events left by an earlier, interrupted run would be stored during this one.
    for queue in [QUEUE, MAIL_QUEUE]:
        run_quiet(["rabbitmqctl", "-q", "purge_queue", queue], timeout=60)


def start_system(processes, args, log_dir):
    services = {
        "RUST_LOG": args.rust_log, "LOG_FORMAT": args.log_format, "HOST": HOST, "NO_COLOR": "1",
    }
    rpc = f"{HOST}:{PORTS['logger_rpc']}"
    maildev = ROOT / ".local/npm/node_modules/maildev/bin/maildev"
    if not maildev.exists():
        raise Failure(f"{maildev} is missing: `bash project/infra.sh up` installs it")
    mail_dir = log_dir / "maildev"
    mail_dir.mkdir()
    processes.start("smtp", ["node", str(maildev), "--smtp", str(PORTS["smtp"]), "--web", str(PORTS["smtp_web"]),
                             "--ip", HOST, "--web-ip", HOST, "--mail-directory", str(mail_dir)], {})
    processes.start("echo", [args.echo, str(PORTS["echo"])], {})
    processes.start("authentication", [f"{args.bin_dir}/authentication"], {
        **services, "PORT": str(PORTS["authentication"]),
        "DSN": f"postgres://postgres:password@{HOST}:5432/{POSTGRES_DB}",
        # A login costs about a millisecond of bcrypt: the path is measured, not bcrypt (whose
        # bound is the login storm's, below). Room in its queue for every client.
        "BCRYPT_COST": str(BCRYPT_COST), "BCRYPT_QUEUE_SIZE": "256",
    })
    processes.start("logger", [f"{args.bin_dir}/logger"], {
        **services, "PORT": str(PORTS["logger"]), "RPC_PORT": str(PORTS["logger_rpc"]), "MONGO_DB": MONGO_DB,
    })
    processes.start("mailer", [f"{args.bin_dir}/mailer"], {
        **services, "PORT": str(PORTS["mailer"]), "MAIL_HOST": HOST, "MAIL_PORT": str(PORTS["smtp"]),
        "MAIL_ENCRYPTION": "none", "MAIL_EXCHANGE": MAIL_EXCHANGE, "MAIL_QUEUE": MAIL_QUEUE,
        "MAIL_CONNECTION_NAME": "bench-mailer",
    })
    processes.start("listener", [f"{args.bin_dir}/listener"], {
        **services, "PORT": str(PORTS["listener"]), "LOGGER_RPC_ADDR": rpc, "EXCHANGE": EXCHANGE,
        "QUEUE_NAME": QUEUE, "CONNECTION_NAME": "bench-listener",
    })
    processes.start("broker", [f"{args.bin_dir}/broker"], {
        **services, "PORT": str(PORTS["broker"]), "AUTH_URL": f"http://{HOST}:{PORTS['authentication']}",
        "LOGGER_RPC_ADDR": rpc, "MAILER_URL": f"http://{HOST}:{PORTS['mailer']}", "EXCHANGE": EXCHANGE,
        "QUEUE_NAME": QUEUE, "MAIL_EXCHANGE": MAIL_EXCHANGE, "MAIL_QUEUE": MAIL_QUEUE, "RATE_LIMITS": "off",
    })
    wait_ready(processes, "smtp", f"http://{HOST}:{PORTS['smtp_web']}/healthz")
    wait_ready(processes, "echo", f"http://{HOST}:{PORTS['echo']}/", method="POST")
    for name in ["authentication", "logger", "mailer", "listener", "broker"]:
        wait_ready(processes, name, f"http://{HOST}:{PORTS[name]}/ready")


def sign_in():
    status, text = http("POST", f"http://{HOST}:{PORTS['broker']}/handle", body=auth_body(), timeout=10)
    match = re.search(r'"token"\s*:\s*"([^"]+)"', text)
    if status != 202 or not match:
        raise Failure(f"signing in answered {status}: {text[:300]}")
    return match.group(1)


def body(action, payload_key, payload):
    return json.dumps({"action": action, payload_key: payload}, separators=(",", ":"))


def auth_body():
    return body("auth", "auth", {"email": "admin@example.com", "password": "verysecret"})


def paths(clients, token):
    """The steps in order: (label, url, body, token, client counts, the processes it involves), or
    "seed" (SEED_ENTRIES stored for `logs` to list), "events" (publish to stored) and "store" (the
    store's insert_many).

    `logs` runs on a store of SEED_ENTRIES, before the other rows fill it: SecantusDB, the
    MongoDB wire server here, decodes every document of the collection for a sorted, limited
    find (its index walk collects every record id before the limit applies), so on the tens of
    thousands of entries the later rows leave, a listing of 10 takes seconds. That is the wire
    server's cost, not the path's; MongoDB walks the (created_at, _id) index and stops at the
    limit."""
    broker = f"http://{HOST}:{PORTS['broker']}"
    mail = {"from": "bench@example.com", "to": "sink@example.com", "subject": "bench", "message": "load test"}
    logs_clients = clients[:1]
    return [
        ("echo (bare actix-web, the floor)", f"http://{HOST}:{PORTS['echo']}/", "", "", clients, ["echo"]),
        ("`POST /` (broker)", f"{broker}/", "", "", clients, ["broker"]),
        "seed",
        ("`logs` (limit 10)", f"{broker}/handle", body("logs", "logs", {"limit": 10}), token, logs_clients,
         ["broker", "logger", "mongo"]),
        ("`log`", f"{broker}/handle", body("log", "log", LOG), "", clients, ["broker", "logger", "mongo"]),
        ("`event`", f"{broker}/handle", body("event", "log", LOG), "", clients, EVENT_PIPELINE),
        "events",
        "store",
        ("`mail`", f"{broker}/handle", body("mail", "mail", mail), token, clients, ["broker", "mailer", "smtp"]),
        ("`auth` (bcrypt cost 4)", f"{broker}/handle", auth_body(), "", clients,
         ["broker", "authentication", "postgres", *EVENT_PIPELINE[1:]]),
    ]


SEED_ENTRIES, SEED_ENTRIES_QUICK = 1_000, 50


def seed(processes, entries):
    """`entries` log actions, one after another, so that `logs` lists a store of that size."""
    url = f"http://{HOST}:{PORTS['broker']}/handle"
    for _ in range(entries):
        status, text = http("POST", url, body=body("log", "log", LOG), timeout=10)
        if status != 202:
            raise Failure(f"seeding the store: a `log` action answered {status}: {text[:200]}")
    processes.check_alive()
    log(f"seeded the store with {entries} entries for `logs`")


def measure_path(processes, cpu, label, url, body_text, token, clients, involved, duration):
    wait_settled(processes)
    before = cpu.snapshot()
    result = wrk(url, clients, duration, body=body_text, token=token)
    wait_settled(processes)
    spent = Cpu.spent(before, cpu.snapshot())
    requests = result["requests"]
    row = {
        "path": label, "clients": clients, "requests": requests,
        "rate": requests / (result["duration_us"] / 1e6), "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000, "errors": result["non2xx"] + result["socket_errors"],
        "first_bad": result["first_bad"],
        "cpu": {name: spent.get(name, 0.0) * 1e6 / max(requests, 1) for name in involved},
    }
    return row


def measure_events(processes, cpu, events, clients):
    """N events through the broker, from the first publish until the last one is stored."""
    wait_settled(processes)
    published_before, _ = published_and_settled()
    before = cpu.snapshot()
    started = time.monotonic()
    threads = 2
    # Each thread stops after its share of answers; wrk is interrupted once the broker has
    # published them all (or after 120 s, when some failed).
    result = wrk(f"http://{HOST}:{PORTS['broker']}/handle", clients, "120s", body=body("event", "log", LOG),
                 limit=math.ceil(events / threads),
                 until=lambda: published_and_settled()[0] - published_before >= events)
    publish_seconds = time.monotonic() - started
    published = wait_settled(processes) - published_before
    seconds = time.monotonic() - started
    spent = Cpu.spent(before, cpu.snapshot())
    return {
        "path": "`event` publish → stored", "clients": clients, "requests": int(published),
        "rate": published / seconds, "publish_rate": published / publish_seconds, "seconds": seconds,
        "errors": result["non2xx"] + result["socket_errors"], "first_bad": result["first_bad"],
        "cpu": {name: spent.get(name, 0.0) * 1e6 / max(published, 1) for name in EVENT_PIPELINE},
    }


def measure_store(cpu, args, entries):
    """The store's own insert_many rate (the logger's insert, logger/examples/insert_many.rs)."""
    mongo_before = cpu.snapshot()["mongo"]
    probe = subprocess.Popen([args.probe, "measure", str(entries)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, "MONGO_DB": STORE_DB, "RUST_LOG": "warn",
                                  # A rate, not a latency bound: a slow group is waited for.
                                  "MONGO_OP_TIMEOUT_MS": "60000"}, cwd=ROOT)
    # Reaped here rather than by Popen: wait4 gives its CPU time (its output fits the pipe).
    deadline = time.monotonic() + 300
    while True:
        pid, status, usage = os.wait4(probe.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            probe.kill()
            _, status, usage = os.wait4(probe.pid, 0)
            break
        time.sleep(0.05)
    probe.returncode = os.waitstatus_to_exitcode(status)
    output = probe.stdout.read().decode(errors="replace")
    mongo = cpu_of(cpu.pids["mongo"]) - mongo_before
    match = re.search(r"RESULT entries=(\d+) seconds=([\d.]+) inserts=(\d+)", output)
    if not match:
        raise Failure(f"the insert_many probe failed: {output[-800:]}")
    n, seconds = int(match.group(1)), float(match.group(2))
    return {
        "path": f"store `insert_many` ({match.group(3)} groups)", "clients": None, "requests": n,
        "rate": n / seconds, "seconds": seconds, "errors": 0, "first_bad": "",
        "cpu": {"probe": (usage.ru_utime + usage.ru_stime) * 1e6 / n, "mongo": mongo * 1e6 / n},
    }


# --- the report ------------------------------------------------------------------------------


def fmt(value, digits=1):
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(rows):
    used = [(key, title) for key, title in COLUMNS if any(key in row["cpu"] for row in rows)]
    # The floor at each client count, measured in the same run: what the machine's state makes
    # of a request that does nothing.
    floor = {row["clients"]: sum(row["cpu"].values()) for row in rows if "echo" in row["cpu"]}
    lines = [
        "| path | clients | requests | req/s | p50 ms | p99 ms | non-2xx | "
        + " | ".join(title for _, title in used) + " | total | × floor |",
        "|---|--:|--:|--:|--:|--:|--:|" + "--:|" * len(used) + "--:|--:|",
    ]
    for row in rows:
        total = sum(row["cpu"].values())
        cells = [
            row["path"], str(row["clients"] or ""), f"{row['requests']:,}", fmt(row["rate"]),
            fmt(row.get("p50_ms"), 2), fmt(row.get("p99_ms"), 2), str(row["errors"]),
        ]
        cells += [fmt(row["cpu"][key]) if key in row["cpu"] else "" for key, _ in used]
        cells.append(f"**{fmt(total)}**")
        cells.append(f"{total / floor[row['clients']]:.1f}" if floor.get(row["clients"]) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def report(rows, args, load_before, load_after, started_at):
    events = next(row for row in rows if row["path"].startswith("`event` publish"))
    store = next(row for row in rows if row["path"].startswith("store"))
    dirty = "" if subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"]).returncode == 0 else ", dirty"
    return "\n".join([
        f"Run of {started_at:%Y-%m-%d %H:%M} UTC, commit `{git('rev-parse', '--short', 'HEAD')}`{dirty}; "
        f"{os.cpu_count()} cores (`nproc`), load average {load_before[0]:.2f} / {load_before[1]:.2f} / "
        f"{load_before[2]:.2f} before and {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after. "
        f"wrk -t2 for {args.duration} per row, release builds, `RUST_LOG={args.rust_log}`, "
        f"`LOG_FORMAT={args.log_format}`, `RATE_LIMITS=off`, `BCRYPT_COST={BCRYPT_COST}`.",
        "",
        "CPU columns: µs of CPU (utime+stime) per request answered, per process; blank where the process is "
        "not on the path. **total** is the row's sum; **× floor** is the total over the bare echo's at the same "
        "client count in this run.",
        "",
        table(rows),
        "",
        f"End to end: {events['requests']:,} events published at {events['publish_rate']:,.0f}/s and all stored "
        f"{events['seconds']:.2f} s after the first was published: **{events['rate']:,.0f} events/s stored**, "
        f"{100 * events['rate'] / store['rate']:.0f} % of the store's own `insert_many` rate measured in the same run "
        f"({store['rate']:,.0f} entries/s, {store['requests']:,} entries).",
        *[f"\nNot 2xx: {row['path']} at {row['clients']} clients, {row['errors']:,} of {row['requests']:,} answers "
          f"(the first: `{row['first_bad'] or 'socket errors'}`)." for row in rows if row["errors"]],
    ])


def write_section(name, text):
    """Replaces what stands between `<!-- name:begin -->` and `<!-- name:end -->` in BENCHMARKS.md."""
    path = ROOT / "project" / "BENCHMARKS.md"
    content = path.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in content or end not in content:
        raise Failure(f"{path} lacks the markers {begin} and {end} of the {name} section")
    head, rest = content.split(begin, 1)
    _, tail_text = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail_text}")
    log(f"wrote the {name} section of {path.relative_to(ROOT)}")


def start_run(name):
    """An empty .local/<name> for the services' logs, the start time and load, and the processes
    to start; a signal ends the run through the caller's `finally`, which stops them."""
    log_dir = ROOT / ".local" / name
    subprocess.run(["rm", "-rf", str(log_dir)], check=True)
    log_dir.mkdir(parents=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return log_dir, datetime.datetime.now(datetime.timezone.utc), os.getloadavg(), Processes(log_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--echo", required=True)
    parser.add_argument("--probe", required=True)
    parser.add_argument("--duration", default=None)
    parser.add_argument("--clients", default=None, help="comma-separated, e.g. 8,64")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--rust-log", default="info")
    parser.add_argument("--log-format", default="json")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    args.duration = args.duration or ("1s" if args.quick else "10s")
    clients = [int(c) for c in (args.clients or ("8" if args.quick else "8,64")).split(",")]
    events = args.events or (300 if args.quick else 20_000)
    entries = args.entries or (2_000 if args.quick else 20_000)

    log_dir, started_at, load_before, processes = start_run("bench")
    rows = []
    try:
        log(f"servers: PostgreSQL database {POSTGRES_DB}, RabbitMQ queues {QUEUE} and {MAIL_QUEUE}, "
            f"MongoDB databases {MONGO_DB} and {STORE_DB}")
        prepare_servers()
        code, out = run_quiet([args.probe, "drop", MONGO_DB, STORE_DB], timeout=60)
        if code != 0:
            raise Failure(f"dropping the benchmark's MongoDB databases: {out.strip()}")
        start_system(processes, args, log_dir)
        pids = {name: processes.pid(name) for name in
                ["echo", "broker", "authentication", "logger", "listener", "mailer", "smtp"]}
        pids["rabbitmq"] = listening_pid(SHARED["rabbitmq"])
        pids["mongo"] = listening_pid(SHARED["mongo"])
        cpu = Cpu(pids, listening_pid(SHARED["postgres"]))
        log(f"up; service logs in {log_dir.relative_to(ROOT)}/; shared servers: RabbitMQ pid {pids['rabbitmq']}, "
            f"MongoDB pid {pids['mongo']}")
        token = sign_in()
        # `logs` on a small store first (see paths()), the event path end to end and the store's
        # ceiling right after the `event` rows.
        for step in paths(clients, token):
            if step == "seed":
                seed(processes, SEED_ENTRIES_QUICK if args.quick else SEED_ENTRIES)
                continue
            if step == "events":
                rows.append(measure_events(processes, cpu, events, max(clients)))
                log(f"events: {rows[-1]['requests']} stored at {rows[-1]['rate']:,.0f}/s")
                continue
            if step == "store":
                rows.append(measure_store(cpu, args, entries))
                log(f"store: {rows[-1]['rate']:,.0f} entries/s")
                continue
            label, url, body_text, path_token, counts, involved = step
            for count in counts:
                row = measure_path(processes, cpu, label, url, body_text, path_token, count, involved, args.duration)
                rows.append(row)
                log(f"{label} at {count}: {row['rate']:,.0f} req/s, {row['errors']} non-2xx, "
                    f"{sum(row['cpu'].values()):.1f} µs CPU/request")
        processes.check_alive()
        if dead_lettered():
            raise Failure(f"{dead_lettered():.0f} events were dead-lettered (see {log_dir}/listener.log)")
    except Failure as failure:
        log(f"FAILED: {failure}")
        return 1
    finally:
        processes.stop_all()
    load_after = os.getloadavg()

    # Every figure, for comparing runs by script.
    (log_dir / "results.json").write_text(json.dumps(
        {"started_at": started_at.isoformat(), "load_before": load_before, "rows": rows}, indent=1))
    text = report(rows, args, load_before, load_after, started_at)
    print("\n" + text + "\n")
    failed = [row for row in rows if row["errors"] or row["requests"] == 0]
    for row in failed:
        log(f"FAILED: {row['path']} at {row['clients']} clients: {row['requests']} answers, {row['errors']} "
            f"errors (first: {row['first_bad'] or 'socket errors'})")
    if args.quick:
        log("quick run: every path answered without errors" if not failed else "quick run FAILED")
    elif not args.no_write:
        write_section("whole-system", text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
