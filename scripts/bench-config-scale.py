#!/usr/bin/env python3
"""Config scale, dataplane side: apply time and memory per configured server,
fairlead-dataplane against HAProxy 2.6 in the same run.

For each size (servers across min(servers, 1,000) backends, names b<i>/s<j>,
all at 127.0.0.1 on a local listener that accepts and closes) and each of
health checks off and on (TCP connect checks every 10 s, fall 3 rise 2):

- fairlead: a fresh `fairlead-dataplane --threads 1` (admin API over HTTPS
  with a bearer token). An empty config is pushed first (its RSS is the
  baseline), then the config: "apply" is the PUT's round trip (the admin API
  answers once the config runs and is persisted; /v1/status then reports
  its version, checked). "change" is the push of the same config with one
  server's weight changed, what an operator pushes per edit.
- HAProxy: the same servers as haproxy.cfg (`nbthread 1`); "check" is
  `haproxy -c`, "apply" the time from exec to its frontend accepting.
  Its baseline is the same haproxy.cfg without backends.

Memory per server = (RSS with the config - baseline RSS) / servers, RSS read
from /proc/PID/status 2 s after the apply. Both get one frontend on
127.0.0.1. Not a test: it prints figures and fairlead/HAProxy ratios.

Usage: scripts/bench-config-scale.py [--fairlead-dataplane PATH] [--sizes 100,1000,10000]
Needs: haproxy, openssl.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time



def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Free ports now: other benchmarks may run on this machine at the same time.
FRONTEND_PORT, ADMIN_PORT, SERVER_PORT = free_port(), free_port(), free_port()
TOKEN = "config-scale-bench-token"
SETTLE = 2.0


def listener(stop):
    """Accepts and closes connections on SERVER_PORT (the servers' address)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", SERVER_PORT))
    s.listen(4096)
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = s.accept()
            conn.close()
        except socket.timeout:
            pass
    s.close()


def backends(servers, checks, changed=False):
    count = min(servers, 1000)
    out = []
    for b in range(count):
        n = servers // count + (1 if b < servers % count else 0)
        backend = {
            "name": f"b{b}",
            "mode": "http",
            "servers": [
                {
                    "name": f"s{j}",
                    "address": "127.0.0.1",
                    "port": SERVER_PORT,
                    "weight": 2 if changed and b == 0 and j == 0 else 1,
                }
                for j in range(n)
            ],
        }
        if checks:
            backend["healthCheck"] = {"intervalMs": 10000, "timeoutMs": 2000, "fall": 3, "rise": 2}
        out.append(backend)
    return out


def fairlead_config(version, servers, checks, changed=False):
    config = {"version": version, "frontends": [], "backends": []}
    if servers:
        config["backends"] = backends(servers, checks, changed)
        config["frontends"] = [
            {
                "name": "fe",
                "mode": "http",
                "bind": f"127.0.0.1:{FRONTEND_PORT}",
                "defaultBackend": "b0",
            }
        ]
    return json.dumps(config).encode()


def haproxy_config(servers, checks):
    lines = [
        "global",
        "    nbthread 1",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 10s",
        "    timeout client 1m",
        "    timeout server 1m",
        "frontend fe",
        f"    bind 127.0.0.1:{FRONTEND_PORT}",
    ]
    if servers:
        lines.append("    default_backend b0")
        check = " check inter 10s fall 3 rise 2" if checks else ""
        for b in backends(servers, checks):
            lines.append(f"backend {b['name']}")
            for s in b["servers"]:
                lines.append(f"    server {s['name']} 127.0.0.1:{SERVER_PORT}{check}")
    else:
        lines.append("    http-request return status 200")
    return "\n".join(lines) + "\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_closed(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            time.sleep(0.05)
        except OSError:
            return


class Dataplane:
    def __init__(self, binary, work):
        # Loopback only: the bench trusts whatever answers on its port.
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        state = tempfile.mkdtemp(dir=work, prefix="state-")
        self.log = open(f"{work}/dataplane.log", "ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--admin-address=127.0.0.1:{ADMIN_PORT}",
                f"--tls-cert={work}/admin.crt",
                f"--tls-key={work}/admin.key",
                f"--token-file={work}/token",
                f"--state-dir={state}",
                "--threads=1",
                "--node-name=bench",
            ],
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        wait_port(ADMIN_PORT)

    def call(self, method, path, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", ADMIN_PORT, context=self.ctx, timeout=120)
        conn.connect()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        started = time.monotonic()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        took = time.monotonic() - started
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data), took

    def push(self, body):
        return self.call("PUT", "/v1/config", body)[1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        wait_closed(ADMIN_PORT)
        wait_closed(FRONTEND_PORT)


def measure_fairlead(binary, work, servers, checks):
    dp = Dataplane(binary, work)
    try:
        dp.push(fairlead_config(1, 0, checks))
        time.sleep(SETTLE)
        base = rss_kib(dp.proc.pid)
        apply = dp.push(fairlead_config(2, servers, checks))
        status, _ = dp.call("GET", "/v1/status")
        if status["version"] != 2:
            raise RuntimeError(f"status reports version {status['version']}, not 2")
        if sum(len(b["servers"]) for b in status["backends"]) != servers:
            raise RuntimeError("status does not list every server")
        wait_port(FRONTEND_PORT)
        time.sleep(SETTLE)
        rss = rss_kib(dp.proc.pid)
        change = dp.push(fairlead_config(3, servers, checks, changed=True))
        return {"apply": apply, "change": change, "per_server": (rss - base) / servers, "rss": rss}
    finally:
        dp.stop()


def measure_haproxy(work, servers, checks):
    def start(cfg_text):
        path = f"{work}/haproxy.cfg"
        with open(path, "w") as f:
            f.write(cfg_text)
        started = time.monotonic()
        out = subprocess.run(["haproxy", "-c", "-q", "-f", path], capture_output=True, text=True)
        check = time.monotonic() - started
        if out.returncode != 0:
            raise RuntimeError(f"haproxy -c: {out.stderr[-500:]}")
        started = time.monotonic()
        proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(FRONTEND_PORT)
        return proc, check, time.monotonic() - started

    proc, _, _ = start(haproxy_config(0, checks))
    time.sleep(SETTLE)
    base = rss_kib(proc.pid)
    proc.terminate()
    proc.wait(timeout=30)
    wait_closed(FRONTEND_PORT)
    proc, check, apply = start(haproxy_config(servers, checks))
    try:
        time.sleep(SETTLE)
        rss = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        wait_closed(FRONTEND_PORT)
    return {"check": check, "apply": apply, "per_server": (rss - base) / servers, "rss": rss}


def make_credentials(work):
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=fairlead-dataplane",
            "-addext", "subjectAltName=DNS:fairlead-dataplane,IP:127.0.0.1",
            "-keyout", f"{work}/admin.key", "-out", f"{work}/admin.crt",
        ],
        check=True,
        capture_output=True,
    )
    with open(f"{work}/token", "w") as f:
        f.write(TOKEN + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/fairlead-target"))
    parser.add_argument("--fairlead-dataplane", default=f"{target}/release/fairlead-dataplane")
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    for tool in ["haproxy", "openssl"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run scripts/install-deps.sh")
    if not os.path.exists(args.fairlead_dataplane):
        sys.exit(f"{args.fairlead_dataplane} is missing: cargo build --release -p fairlead-dataplane")
    haproxy_version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"# {haproxy_version}; fairlead {args.fairlead_dataplane}")
    print("# one worker thread each; the machine is shared with other builds, figures drift")
    work = tempfile.mkdtemp(prefix="fairlead-config-scale-")
    stop = threading.Event()
    thread = threading.Thread(target=listener, args=(stop,), daemon=True)
    thread.start()
    try:
        make_credentials(work)
        print(
            f"{'servers':>7} {'checks':>6} | {'fairlead apply':>14} {'change':>8} {'KiB/server':>10} {'RSS MiB':>8}"
            f" | {'haproxy -c':>10} {'start':>8} {'KiB/server':>10} {'RSS MiB':>8} | {'memory ratio':>12}"
        )
        for servers in [int(s) for s in args.sizes.split(",")]:
            for checks in [False, True]:
                f = measure_fairlead(args.fairlead_dataplane, work, servers, checks)
                h = measure_haproxy(work, servers, checks)
                ratio = f["per_server"] / h["per_server"] if h["per_server"] > 0 else float("nan")
                print(
                    f"{servers:>7} {'on' if checks else 'off':>6} |"
                    f" {f['apply'] * 1000:>11.1f} ms {f['change'] * 1000:>5.1f} ms {f['per_server']:>10.2f}"
                    f" {f['rss'] / 1024:>8.1f} | {h['check'] * 1000:>7.1f} ms {h['apply'] * 1000:>5.1f} ms"
                    f" {h['per_server']:>10.2f} {h['rss'] / 1024:>8.1f} | {ratio:>12.2f}",
                    flush=True,
                )
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
