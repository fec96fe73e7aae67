#!/usr/bin/env python3
"""What the RabbitMQ job queue adds to wall time: the same cases segmented by
`autocontour segment --jobs N --threads T` (one process) and by N `autocontour worker
--threads T` processes fed by `autocontour submit` through a private RabbitMQ broker (Debian's
rabbitmq-server, started on loopback ports of its own and stopped at the end), one run each,
same machine.

The cases are --cases links to the RIDER Lung CT (or any --ct folder), so every case does the
same work. The workers are started and warmed with one job before the timed batch (a deployed
worker has its model loaded); the `segment` figure is the whole process (it loads the model
once). Both write rtstruct.dcm, preview.png and summary.json per case with stable UIDs.

    cargo build --release -p autocontour-cli
    python3 tests/setup/fetch.py ort rider
    python3 benches/compare/queue_compare.py [--cases 30] [--jobs 2] [--threads 1]

The CLI binary is taken from $AUTOCONTOUR_BIN or target/release/autocontour; work files go to
target/tmp/queue_compare/.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port():
    """A free loopback port below Linux's ephemeral range (a port in it can become the source
    port of the readiness probe itself: a TCP self-connect)."""
    import random
    while True:
        port = random.randint(20000, 31999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def wait_amqp(port, proc, limit=120):
    t = time.time()
    while time.time() - t < limit:
        if proc.poll() is not None:
            sys.exit(f"rabbitmq-server exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                s.settimeout(2)
                if s.recv(7)[:1] == b"\x01":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    sys.exit("rabbitmq-server did not answer")


def start_broker(work):
    d = os.path.join(work, "broker")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    amqp, dist, epmd_port = free_port(), free_port(), free_port()
    with open(os.path.join(d, "enabled_plugins"), "w") as f:
        f.write("[].\n")
    with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
        f.write(f"listeners.tcp.default = 127.0.0.1:{amqp}\nlog.console = false\n")
    epmd = subprocess.Popen(["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"])
    env = dict(os.environ)
    env.update({
        "HOME": d,
        "RABBITMQ_NODENAME": f"acbench{os.getpid()}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": os.path.join(d, "rabbitmq.pid"),
    })
    log = open(os.path.join(d, "server.log"), "w")
    server = subprocess.Popen([SERVER], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    wait_amqp(amqp, server)
    return server, epmd, f"amqp://guest:guest@127.0.0.1:{amqp}/%2f"


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ct", default=os.path.join(ROOT, "target/testdata/rider/ct"))
    args = ap.parse_args()
    exe = os.environ.get("AUTOCONTOUR_BIN", os.path.join(ROOT, "target/release/autocontour"))
    work = os.path.join(ROOT, "target/tmp/queue_compare")
    shutil.rmtree(work, ignore_errors=True)
    cases = os.path.join(work, "cases")
    os.makedirs(cases)
    inputs = []
    for i in range(args.cases):
        p = os.path.join(cases, f"case{i:02}")
        os.symlink(os.path.abspath(args.ct), p)
        inputs.append(p)
    env = dict(os.environ)
    env.setdefault("AUTOCONTOUR_ORT_LIB", os.path.join(ROOT, "target/onnxruntime/libonnxruntime.so.1.31.1"))
    threads = ["--threads", str(args.threads)]

    t = time.time()
    subprocess.run([exe, "segment", *inputs, "--out", os.path.join(work, "segment"), "--jobs",
                    str(args.jobs), "--stable-uids", *threads], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    segment_s = time.time() - t

    server, epmd, url = start_broker(work)
    env["AUTOCONTOUR_AMQP_URL"] = url
    workers = []
    try:
        for i in range(args.jobs):
            log = open(os.path.join(work, f"worker{i}.log"), "w")
            workers.append(subprocess.Popen([exe, "worker", *threads], env=env, stdout=log, stderr=log))
        # Warm-up: one job per worker, so every worker has loaded its model and run once.
        subprocess.run([exe, "submit", *inputs[: args.jobs], "--out", os.path.join(work, "warmup")],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t = time.time()
        subprocess.run([exe, "submit", *inputs, "--out", os.path.join(work, "queue"),
                        "--events", os.path.join(work, "events.jsonl")],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        queue_s = time.time() - t
    finally:
        for w in workers:
            stop(w)
        stop(server)
        epmd.kill()
        epmd.wait()

    events = [json.loads(l) for l in open(os.path.join(work, "events.jsonl"))]
    per_worker = {}
    for e in events:
        if e["event"] == "finished":
            per_worker[e["worker"]] = per_worker.get(e["worker"], 0) + 1
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    load = os.getloadavg()[0]
    print(json.dumps({
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "load_average_1min_at_end": round(load, 2),
        "cases": args.cases,
        "ct": args.ct,
        "jobs_or_workers": args.jobs,
        "ort_threads": args.threads,
        "segment_jobs_s": round(segment_s, 2),
        "queue_workers_s": round(queue_s, 2),
        "queue_over_segment": round(queue_s / segment_s, 3),
        "jobs_per_worker": per_worker,
        "jobs_per_hour_queue": round(args.cases / queue_s * 3600),
    }, indent=2))


if __name__ == "__main__":
    main()
