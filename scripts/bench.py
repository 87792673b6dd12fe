#!/usr/bin/env python3
"""Benchmark fairlead against HAProxy on loopback, side by side in one run.

Method (see ../shared/BENCHMARKING.md): nginx (1 worker) is the backend for
both proxies; nginx and the proxy run pinned to core 0, wrk to core 1; the
proxy runs one worker thread (HAProxy nbthread 1, fairlead --threads 1).
Each scenario runs RUNS times per target, alternating targets; medians and
min-max are printed with the fairlead/HAProxy ratios. The headline figure is
the proxy's CPU time per request, from /proc/PID/stat.

TLS scenarios terminate TLS on the proxies (same ECDSA P-256 certificate,
TLS 1.3, HTTP/1.1 to clients): "TLS handshakes" counts full handshakes with
`openssl s_time -new` (no session reuse, so resumption settings do not
matter); "TLS keep-alive" is wrk over https. There is no "direct" line there.

"keep-alive 2 B, httplog to syslog" sends one httplog line per request from
both proxies (HAProxy `log 127.0.0.1:PORT local2` + `option httplog`) to a
real rsyslogd (imudp, `local2.*` to a file; pinned to core 1 with wrk);
the lines that reached the file are counted per target.

"keep-alive 2 B, metrics scraped" is the 2-byte scenario again with fairlead's
/metrics (--metrics-address) fetched once a second during each run, beside a
fairlead built without counters (--baseline PATH, e.g. a release build of the
commit before them) when given.

Usage: scripts/bench.py [--duration 10] [--runs 3] [--fairlead PATH] [--baseline PATH]
Needs: wrk, nginx, haproxy, openssl (scripts/install-deps.sh installs them).
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import socket

NGINX_PORT, HAPROXY_PORT, FAIRLEAD_PORT = 19100, 19200, 19300
FAIRLEAD_METRICS_PORT, BASELINE_PORT = 19302, 19400
HAPROXY_LOG_PORT, FAIRLEAD_LOG_PORT, SYSLOG_PORT = 19202, 19303, 19500
HAPROXY_TLS_PORT, FAIRLEAD_TLS_PORT = 19201, 19301
CLK_TCK = os.sysconf("SC_CLK_TCK")

SCENARIOS = [
    # name, path, extra wrk args
    ("keep-alive 2 B", "/", []),
    ("keep-alive 16 KiB", "/16k", []),
    ("Connection: close 2 B", "/", ["-H", "Connection: close"]),
    ("TLS handshakes", "tls-handshake", []),
    ("TLS keep-alive 2 B", "/", ["tls"]),
    ("keep-alive 2 B, metrics scraped 1/s", "/", ["metrics"]),
    ("keep-alive 2 B, httplog to syslog", "/", ["httplog"]),
]

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{ default_type text/plain; return 200 "ok"; }}
        location = /16k {{ root {dir}/www; }}
    }}
}}
"""

HAPROXY_CONF = """
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    option forwardfor
frontend http-in
    bind 127.0.0.1:{port}
    default_backend app
frontend https-in
    bind 127.0.0.1:{tls_port} ssl crt {dir}/site.pem alpn http/1.1
    default_backend app
frontend http-log
    bind 127.0.0.1:{log_port}
    log 127.0.0.1:{syslog} local2
    option httplog
    default_backend app
backend app
    balance roundrobin
    server nginx 127.0.0.1:{backend} maxconn 0
"""

FAIRLEAD_YAML = """
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: http-in}}
spec:
  mode: http
  bind: {{address: 127.0.0.1, port: {port}}}
  defaultBackend: app
  maxConnections: 4096
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: app}}
spec:
  mode: http
  balance: roundrobin
  servers:
    - {{name: nginx, address: 127.0.0.1, port: {backend}}}
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: https-in}}
spec:
  mode: http
  bind: {{address: 127.0.0.1, port: {tls_port}}}
  tls: {{certificates: [{{secret: site}}], alpn: [http/1.1]}}
  defaultBackend: app
  maxConnections: 4096
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: http-log}}
spec:
  mode: http
  bind: {{address: 127.0.0.1, port: {log_port}}}
  defaultBackend: app
  maxConnections: 4096
  logging: {{format: httplog, syslog: {{address: "127.0.0.1:{syslog}", facility: local2}}}}
"""

RSYSLOG_CONF = """
global(workDirectory="{dir}/rsyslog")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{port}")
local2.* {dir}/haproxy.log
"""


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def cpu_seconds(pid):
    """utime + stime of a process and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scrape_every_second(stop, count):
    """GETs fairlead's /metrics once a second until `stop` is set."""
    while not stop.wait(1.0):
        with socket.create_connection(("127.0.0.1", FAIRLEAD_METRICS_PORT), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            body = b""
            while chunk := s.recv(65536):
                body += chunk
        if b"haproxy_frontend_http_requests_total" not in body:
            raise SystemExit("fairlead's /metrics answered without haproxy_frontend_http_requests_total")
        count[0] += 1


def log_lines(work):
    """Lines rsyslog has written to its file so far."""
    try:
        with open(f"{work}/haproxy.log", "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def run_wrk(port, path, extra, duration, connections):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    scheme = "https" if "tls" in extra else "http"
    extra = [x for x in extra if x not in ("tls", "metrics")]
    cmd += extra + [f"{scheme}://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = parse_latency(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"port {port}{path}: {errors.group(0)}; figures would be meaningless")
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"    note: port {port}: {socket_errors.group(0)}")
    return rps, p99, total


def run_s_time(port, duration):
    """Full TLS handshakes (new session each time) for `duration` seconds: (per second, count)."""
    cmd = ["taskset", "-c", "1", "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if not m:
        raise SystemExit(f"openssl s_time on port {port} printed: {out}")
    total, seconds = int(m.group(1)), max(int(m.group(2)), 1)
    return total / seconds, 0.0, total


def parse_latency(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def fmt(values, unit, digits=1):
    med = statistics.median(values)
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--runs", type=int, default=3, help="runs per target and scenario (default 3)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument("--only", default=None, help="run only scenarios whose name contains this text")
    ap.add_argument("--fairlead", default=None, help="path of the fairlead binary (default: release build)")
    ap.add_argument("--baseline", default=None,
                    help="another fairlead binary (one without counters) for the metrics scenario")
    args = ap.parse_args()

    for tool in ("wrk", "nginx", "haproxy", "taskset"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing: run scripts/install-deps.sh")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/fairlead-target"))
    fairlead = args.fairlead or os.path.join(target, "release", "fairlead")
    if not args.fairlead:
        subprocess.run(["cargo", "build", "--release", "-p", "fairlead-operator", "--bin", "fairlead"], check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": target})

    work = tempfile.mkdtemp(prefix="fairlead-bench-")
    os.chmod(work, 0o755)  # nginx's worker user reads the files
    os.makedirs(f"{work}/www")
    with open(f"{work}/www/16k", "wb") as f:
        f.write(b"x" * 16384)
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(dir=work, port=NGINX_PORT))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", f"{work}/site.key", "-out", f"{work}/site.crt"],
                   check=True, capture_output=True)
    with open(f"{work}/site.pem", "w") as f:
        f.write(open(f"{work}/site.crt").read() + open(f"{work}/site.key").read())
    with open(f"{work}/haproxy.cfg", "w") as f:
        f.write(HAPROXY_CONF.format(port=HAPROXY_PORT, backend=NGINX_PORT, tls_port=HAPROXY_TLS_PORT, dir=work,
                                    log_port=HAPROXY_LOG_PORT, syslog=SYSLOG_PORT))
    with open(f"{work}/fairlead.yaml", "w") as f:
        f.write(FAIRLEAD_YAML.format(port=FAIRLEAD_PORT, backend=NGINX_PORT, tls_port=FAIRLEAD_TLS_PORT,
                                     log_port=FAIRLEAD_LOG_PORT, syslog=SYSLOG_PORT))
    os.makedirs(f"{work}/rsyslog")
    with open(f"{work}/rsyslog.conf", "w") as f:
        f.write(RSYSLOG_CONF.format(dir=work, port=SYSLOG_PORT))

    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    procs = []
    try:
        pin = ["taskset", "-c", "0"]
        procs.append(subprocess.Popen(pin + [nginx_bin, "-c", f"{work}/nginx.conf"]))
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        procs.append(subprocess.Popen(["taskset", "-c", "1", rsyslogd, "-n", "-f", f"{work}/rsyslog.conf",
                                       "-i", f"{work}/rsyslog/rsyslogd.pid"]))
        haproxy = subprocess.Popen(pin + [haproxy_bin, "-f", f"{work}/haproxy.cfg"])
        procs.append(haproxy)
        fl = subprocess.Popen(pin + [fairlead, "run", "-f", f"{work}/fairlead.yaml", "-f", f"{work}/site.pem",
                                     "--threads", "1", "--metrics-address", f"127.0.0.1:{FAIRLEAD_METRICS_PORT}"],
                              env={**os.environ, "RUST_LOG": "warn"})
        procs.append(fl)
        ports = [NGINX_PORT, HAPROXY_PORT, FAIRLEAD_PORT, HAPROXY_TLS_PORT, FAIRLEAD_TLS_PORT, FAIRLEAD_METRICS_PORT,
                 HAPROXY_LOG_PORT, FAIRLEAD_LOG_PORT]
        base = None
        if args.baseline:
            os.makedirs(f"{work}/baseline")
            with open(f"{work}/baseline/fairlead.yaml", "w") as f:
                f.write(FAIRLEAD_YAML.format(port=BASELINE_PORT, backend=NGINX_PORT, tls_port=BASELINE_PORT + 1,
                                             log_port=BASELINE_PORT + 2, syslog=SYSLOG_PORT))
            base = subprocess.Popen(pin + [args.baseline, "run", "-f", f"{work}/baseline/fairlead.yaml",
                                           "-f", f"{work}/site.pem", "--threads", "1"],
                                    env={**os.environ, "RUST_LOG": "warn"})
            procs.append(base)
            ports.append(BASELINE_PORT)
        for port in ports:
            wait_port(port)
        time.sleep(0.5)
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"{p.args} exited with {p.returncode}: is its port taken by another process?")
        haproxy_ver = subprocess.run([haproxy_bin, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        print(f"# fairlead vs {haproxy_ver}; {args.runs} runs x {args.duration}s, wrk -t1 -c{args.connections}; "
              "proxy+nginx on core 0, wrk on core 1; medians (min-max)")
        targets = [("direct", NGINX_PORT, None), ("haproxy", HAPROXY_PORT, haproxy.pid), ("fairlead", FAIRLEAD_PORT, fl.pid)]
        tls_targets = [("haproxy", HAPROXY_TLS_PORT, haproxy.pid), ("fairlead", FAIRLEAD_TLS_PORT, fl.pid)]
        metrics_targets = [("haproxy", HAPROXY_PORT, haproxy.pid), ("fairlead", FAIRLEAD_PORT, fl.pid)]
        if base:
            metrics_targets.insert(1, ("baseline", BASELINE_PORT, base.pid))
        log_targets = [("haproxy", HAPROXY_LOG_PORT, haproxy.pid), ("fairlead", FAIRLEAD_LOG_PORT, fl.pid)]
        for name, path, extra in [s for s in SCENARIOS if not args.only or args.only in s[0]]:
            tls = name.startswith("TLS")
            scraped = "metrics" in extra
            logged = "httplog" in extra
            extra = [e for e in extra if e != "httplog"]
            scenario_targets = (tls_targets if tls else metrics_targets if scraped
                                else log_targets if logged else targets)
            logged_lines = {t[0]: [] for t in scenario_targets}
            scrapes = [0]
            results = {t[0]: {"rps": [], "p99": [], "cpu": []} for t in scenario_targets}
            for _ in range(args.runs):
                for tname, port, pid in scenario_targets:
                    before = cpu_seconds(pid) if pid else 0.0
                    stop = threading.Event()
                    scraper = None
                    if scraped and tname == "fairlead":
                        scraper = threading.Thread(target=scrape_every_second, args=(stop, scrapes))
                        scraper.start()
                    if path == "tls-handshake":
                        rps, p99, total = run_s_time(port, args.duration)
                    else:
                        lines_before = log_lines(work) if logged else 0
                        rps, p99, total = run_wrk(port, path, extra, args.duration, args.connections)
                        if logged:
                            time.sleep(1)  # let rsyslog write what it has
                            logged_lines[tname].append((log_lines(work) - lines_before) / max(total, 1))
                    stop.set()
                    if scraper:
                        scraper.join()
                    results[tname]["rps"].append(rps)
                    results[tname]["p99"].append(p99)
                    if pid:
                        results[tname]["cpu"].append((cpu_seconds(pid) - before) * 1e6 / max(total, 1))
            print(f"\n## {name}")
            for tname, _, pid in scenario_targets:
                r = results[tname]
                if path == "tls-handshake":
                    line = f"  {tname:9} {fmt(r['rps'], ' handshakes/s', 0)}"
                else:
                    line = f"  {tname:9} {fmt([x / 1000 for x in r['rps']], 'k req/s')}  p99 {fmt(r['p99'], ' ms', 2)}"
                if pid:
                    line += f"  CPU {fmt(r['cpu'], ' us/req')}"
                print(line)
            fr, hr = results["fairlead"], results["haproxy"]
            med = statistics.median
            if scraped:
                print(f"  fairlead's /metrics scraped {scrapes[0]} times during its runs")
            if logged:
                for tname, shares in logged_lines.items():
                    print(f"  {tname}: lines in rsyslog's file per request {fmt(shares, '', 3)}")
            if "baseline" in results:
                br = results["baseline"]
                print(f"  ratio fairlead (metrics scraped)/baseline (no counters): CPU/req "
                      f"{med(fr['cpu']) / med(br['cpu']):.3f}, req/s {med(fr['rps']) / med(br['rps']):.3f} "
                      "(aim: CPU <= 1.03)")
            p99_ratio = med(fr['p99']) / med(hr['p99']) if med(hr['p99']) else float("nan")
            print(f"  ratio fairlead/haproxy: req/s {med(fr['rps']) / med(hr['rps']):.2f}, "
                  f"p99 {p99_ratio:.2f}, CPU/req {med(fr['cpu']) / med(hr['cpu']):.2f} "
                  "(aim: req/s >= 1, p99 <= 1, CPU <= 0.8)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
