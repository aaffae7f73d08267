#!/usr/bin/env python3
"""What metrics and tracing cost per request (`project/bench/run.sh --cost`), in CPU time.

Four broker + logger pairs of the same release build run side by side, one per setting:
everything on (the default), `HTTP_METRICS=off`, `OTEL_SDK_DISABLED=true`, and both off. Each
round loads every pair in turn with wrk (`POST /` on the broker, then the `log` action through
broker and logger), and the bare actix-web echo as the floor, so that the machine's drift hits
every setting alike; the CPU of each process is read from /proc/<pid>/stat around each load.
The figures are summed over the rounds. The pairs share the machine's MongoDB wire server, each
with a database of its own; MongoDB's CPU is not counted (it is the same work in every setting).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the whole-system driver: processes, wrk, CPU readings)
from bench import HOST, ROOT, Failure, cpu_of, log, wait_ready, wrk  # noqa: E402

# Ports of their own: not the whole-system run's 18280-18289.
ECHO_PORT = 18300
SETTINGS = [
    ("metrics and tracing (the default)", {}),
    ("tracing only (`HTTP_METRICS=off`)", {"HTTP_METRICS": "off"}),
    ("metrics only (`OTEL_SDK_DISABLED=true`)", {"OTEL_SDK_DISABLED": "true"}),
    ("neither", {"HTTP_METRICS": "off", "OTEL_SDK_DISABLED": "true"}),
]


DATABASES = [f"bench_cost_{index}" for index in range(len(SETTINGS))]


def ports(index):
    base = 18310 + 10 * index
    return {"broker": base, "logger": base + 1, "logger_rpc": base + 2}


def start(processes, args):
    common = {"RUST_LOG": args.rust_log, "LOG_FORMAT": args.log_format, "HOST": HOST, "NO_COLOR": "1"}
    processes.start("echo", [args.echo, str(ECHO_PORT)], {})
    for index, (_, env) in enumerate(SETTINGS):
        p = ports(index)
        processes.start(f"logger{index}", [f"{args.bin_dir}/logger"], {
            **common, **env, "PORT": str(p["logger"]), "RPC_PORT": str(p["logger_rpc"]),
            "MONGO_DB": DATABASES[index],
        })
        # The downstreams it does not use point at closed ports: no request here reaches them.
        processes.start(f"broker{index}", [f"{args.bin_dir}/broker"], {
            **common, **env, "PORT": str(p["broker"]), "LOGGER_RPC_ADDR": f"{HOST}:{p['logger_rpc']}",
            "AUTH_URL": f"http://{HOST}:9", "MAILER_URL": f"http://{HOST}:9", "RATE_LIMITS": "off",
            "EXCHANGE": "bench_cost_topic", "QUEUE_NAME": "bench_cost",
        })
    wait_ready(processes, "echo", f"http://{HOST}:{ECHO_PORT}/", method="POST")
    for index in range(len(SETTINGS)):
        p = ports(index)
        wait_ready(processes, f"logger{index}", f"http://{HOST}:{p['logger']}/ready")
        wait_ready(processes, f"broker{index}", f"http://{HOST}:{p['broker']}/ready")


def load(processes, names, url, body, args):
    """(requests answered, {name: CPU seconds}, answers not 2xx, the first of them) of one wrk run;
    fails when nothing was answered."""
    before = {name: cpu_of(processes.pid(name)) for name in names}
    result = wrk(url, args.clients, args.duration, body=body)
    after = {name: cpu_of(processes.pid(name)) for name in names}
    if not result["requests"]:
        raise Failure(f"{url}: no answer in {args.duration}")
    bad = result["non2xx"] + result["socket_errors"]
    return result["requests"], {name: after[name] - before[name] for name in names}, bad, result["first_bad"]


def report(totals, args, started_at, load_before, load_after):
    echo = totals["echo"]
    floor = echo["cpu"]["echo"] * 1e6 / echo["requests"]

    def per_request(row, name):
        return row["cpu"].get(name, 0.0) * 1e6 / row["requests"]

    lines = [
        f"Run of {started_at:%Y-%m-%d %H:%M} UTC, commit `{bench.git('rev-parse', '--short', 'HEAD')}`; "
        f"{os.cpu_count()} cores, load average {load_before[0]:.2f} before and {load_after[0]:.2f} after. "
        f"{args.rounds} rounds of wrk -t2 -c{args.clients} for {args.duration} per row, release builds, "
        f"`RUST_LOG={args.rust_log}`, `LOG_FORMAT={args.log_format}`; µs of CPU per request, summed over the "
        f"rounds. The bare echo took **{floor:.1f} µs** per request "
        f"({echo['requests']:,} requests).",
        "",
        "| setting | `POST /`: broker | × echo | `log`: broker | logger | broker + logger |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for index, (label, _) in enumerate(SETTINGS):
        root, log_row = totals[f"root{index}"], totals[f"log{index}"]
        broker_root = per_request(root, f"broker{index}")
        broker_log, logger_log = per_request(log_row, f"broker{index}"), per_request(log_row, f"logger{index}")
        lines.append(f"| {label} | {broker_root:.1f} | {broker_root / floor:.2f} | {broker_log:.1f} | "
                     f"{logger_log:.1f} | {broker_log + logger_log:.1f} |")
    last = len(SETTINGS) - 1

    def cost(path, names):
        on = sum(per_request(totals[f"{path}0"], f"{name}0") for name in names)
        off = sum(per_request(totals[f"{path}{last}"], f"{name}{last}") for name in names)
        return on - off, 100 * (on - off) / off

    root_cost, log_cost = cost("root", ["broker"]), cost("log", ["broker", "logger"])
    for key, row in totals.items():
        if row["bad"]:
            what = "the echo" if key == "echo" else (
                f"{'`POST /`' if key.startswith('root') else 'the `log` action'} with {SETTINGS[int(key[-1])][0]}")
            lines += ["", f"Not 2xx: {what}, {row['bad']:,} of {row['requests']:,} answers "
                          f"(the first: `{row['first_bad'] or 'socket errors'}`)."]
    lines += ["", f"Metrics and tracing together cost {root_cost[0]:.1f} µs per `POST /` ({root_cost[1]:.0f} % "
              f"of the broker's request without them) and {log_cost[0]:.1f} µs per `log` action across broker and "
              f"logger ({log_cost[1]:.0f} %)."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--echo", required=True)
    parser.add_argument("--probe", required=True, help="logger/examples/insert_many: drops the databases")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rust-log", default="info")
    parser.add_argument("--log-format", default="json")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    log_dir, started_at, load_before, processes = bench.start_run("bench-cost")
    log_body = bench.body("log", "log", bench.LOG)
    totals = {}

    def add(key, requests, spent, bad, first_bad):
        row = totals.setdefault(key, {"requests": 0, "cpu": {}, "bad": 0, "first_bad": ""})
        row["requests"] += requests
        row["bad"] += bad
        row["first_bad"] = row["first_bad"] or first_bad
        for name, seconds in spent.items():
            row["cpu"][name] = row["cpu"].get(name, 0.0) + seconds

    try:
        start(processes, args)
        log(f"up; logs in {log_dir.relative_to(ROOT)}/")
        for round_number in range(1, args.rounds + 1):
            add("echo", *load(processes, ["echo"], f"http://{HOST}:{ECHO_PORT}/", "", args))
            for index in range(len(SETTINGS)):
                broker = f"http://{HOST}:{ports(index)['broker']}"
                add(f"root{index}", *load(processes, [f"broker{index}"], f"{broker}/", "", args))
                add(f"log{index}", *load(processes, [f"broker{index}", f"logger{index}"], f"{broker}/handle",
                                         log_body, args))
            processes.check_alive()
            log(f"round {round_number} of {args.rounds} done")
    except Failure as failure:
        log(f"FAILED: {failure}")
        return 1
    finally:
        processes.stop_all()
        # Tens of thousands of entries a database: not left to weigh on the shared server.
        bench.run_quiet([args.probe, "drop", *DATABASES], timeout=60)
    text = report(totals, args, started_at, load_before, os.getloadavg())
    print("\n" + text + "\n")
    if not args.no_write:
        bench.write_section("cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
