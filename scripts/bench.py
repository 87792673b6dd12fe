#!/usr/bin/env python3
"""Benchmark fairlead against HAProxy and nginx on loopback, side by side in one run.

Method (see ../shared/BENCHMARKING.md): nginx (1 worker) is the backend of
every proxy; the backend and the proxy run pinned to core 0, the load
generator (wrk, openssl s_time, iperf3) on core 1; each proxy runs one worker
(HAProxy nbthread 1, nginx worker_processes 1, fairlead --threads 1). Each
scenario runs RUNS times per target, alternating targets; medians and min-max
are printed with the ratios fairlead/HAProxy and fairlead/nginx. The headline
figure is the proxy's CPU time per request, from /proc/PID/stat (nginx: master
and workers together).

The peers: HAProxy from Debian with its defaults; nginx from Debian as a
reverse proxy with an upstream keepalive pool (`keepalive 64`, HTTP/1.1 and
`Connection ""` to the backend, keepalive_requests 1000000 on both sides).

TLS scenarios terminate TLS on the proxies (same ECDSA P-256 certificate,
TLS 1.3, HTTP/1.1 to clients): "TLS handshakes" counts full handshakes with
`openssl s_time -new` (no session reuse, so resumption settings do not
matter); "TLS keep-alive" is wrk over https. There is no "direct" line there.

"httplog to syslog" sends one access-log line per request from each proxy
(HAProxy `option httplog`, nginx `access_log syslog:... combined`, fairlead
`logging: {format: httplog}`) to a real rsyslogd (imudp, `local2.*` to a
file; on core 1 with wrk); the lines that reached the file are counted.

"metrics scraped" is the 2-byte scenario with fairlead's /metrics fetched once
a second during its runs, beside a fairlead built without counters (--baseline
PATH) when given.

"multi-core": HAProxy nbthread 2, nginx worker_processes 2, fairlead
--threads 2, each unpinned (cores 0-1) with wrk -t2 unpinned; the backend
stays on core 0. Everything shares the 2 cores, so read CPU per request.

"TCP bulk": one iperf3 stream (iperf3 server on core 0, client on core 1)
directly and through each proxy in tcp mode (HAProxy also with
`option splice-auto`, nginx `stream {}`): Gbit/s and proxy CPU seconds per GB.

"idle connections": each proxy in turn, started fresh on core 0, gets --idle
client connections (one GET each, then idle, from one Python process on core
1); RSS (/proc/PID/status) at start, with them open, and after closing them,
three bursts in a row.

Usage: scripts/bench.py [--quick] [--only TEXT,...] [--duration 10] [--runs 3]
                        [--idle 10000] [--fairlead PATH] [--baseline PATH]
Needs: wrk, nginx, haproxy, openssl, rsyslog, iperf3, libnginx-mod-stream
(scripts/install-deps.sh installs them).
"""

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import bench_configs as conf
from bench_configs import Listeners
from bench_tcp_memory import MED, cpu_seconds, fmt, idle_memory, tcp_bulk

NGINX_PORT, SYSLOG_PORT, IPERF_PORT = 19100, 19500, 19700
HAPROXY = Listeners(http=19200, tls=19201, log=19202, tcp=19203, tcp_splice=19204)
FAIRLEAD = Listeners(http=19300, tls=19301, log=19303, tcp=19304)
FAIRLEAD_METRICS_PORT = 19302
NGINX_PROXY = Listeners(http=19600, tls=19601, log=19602, tcp=19604)
BASELINE = Listeners(http=19400, tls=19401, log=19402)
MULTI = {"haproxy": Listeners(http=19210, threads=2), "nginx": Listeners(http=19610, threads=2),
         "fairlead": Listeners(http=19310, threads=2)}
IDLE_PORTS = {"haproxy": (19220, 19221), "nginx": (19620, 19621), "fairlead": (19320, 19321)}

# name, kind, URL path, flags
SCENARIOS = [
    ("keep-alive 2 B", "http", "/", set()),
    ("keep-alive 16 KiB", "http", "/16k", set()),
    ("Connection: close 2 B", "http", "/", {"close"}),
    ("TLS handshakes", "http", "/", {"tls", "handshake"}),
    ("TLS keep-alive 2 B", "http", "/", {"tls"}),
    ("keep-alive 2 B, metrics scraped 1/s", "http", "/", {"metrics"}),
    ("keep-alive 2 B, httplog to syslog", "http", "/", {"httplog"}),
    ("multi-core keep-alive 2 B (2 threads, unpinned)", "http", "/", {"multi"}),
    ("TCP bulk (iperf3, 1 stream)", "tcp", None, set()),
    ("idle HTTP connections", "idle", None, set()),
    ("idle TLS connections", "idle", None, {"tls"}),
]


class Lab:
    """The work directory and every process the run started (stopped by close())."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fairlead-bench-")
        os.chmod(self.dir, 0o755)  # nginx's worker user reads the files
        self.procs = []

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, cmd, cpus="0", **kw):
        p = subprocess.Popen(["taskset", "-c", cpus] + cmd, **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def wait_listening(port, timeout=10.0):
    """Waits for a listener without connecting to it (iperf3 logs an error for a probe)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:  # local_address is "0100007F:PORT" in hex, state 0A is LISTEN
            if any(row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A" for row in list(f)[1:]):
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


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


def run_wrk(url, extra, duration, connections, threads=1, cpus="1"):
    cmd = ["taskset", "-c", cpus, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    out = subprocess.run(cmd + extra + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = parse_latency(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(0)}; figures would be meaningless")
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"    note: {url}: {socket_errors.group(0)}")
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


def http_scenario(name, path, flags, targets, args, work):
    """targets: (name, port, pid or None). Runs wrk (or s_time) against each, alternating; prints."""
    handshake, multi = "handshake" in flags, "multi" in flags
    extra = ["-H", "Connection: close"] if "close" in flags else []
    scheme = "https" if "tls" in flags else "http"
    lines = {t[0]: [] for t in targets}
    scrapes = [0]
    res = {t[0]: {"rps": [], "p99": [], "cpu": []} for t in targets}
    for _ in range(args.runs):
        for tname, port, pid in targets:
            before = cpu_seconds(pid) if pid else 0.0
            stop = threading.Event()
            scraper = None
            if "metrics" in flags and tname == "fairlead":
                scraper = threading.Thread(target=scrape_every_second, args=(stop, scrapes))
                scraper.start()
            lines_before = log_lines(work) if "httplog" in flags else 0
            if handshake:
                rps, p99, total = run_s_time(port, args.duration)
            elif multi:
                rps, p99, total = run_wrk(f"{scheme}://127.0.0.1:{port}{path}", extra, args.duration,
                                          2 * args.connections, threads=2, cpus="0,1")
            else:
                rps, p99, total = run_wrk(f"{scheme}://127.0.0.1:{port}{path}", extra, args.duration,
                                          args.connections)
            if "httplog" in flags:
                time.sleep(1)  # let rsyslog write what it has
                lines[tname].append((log_lines(work) - lines_before) / max(total, 1))
            stop.set()
            if scraper:
                scraper.join()
            res[tname]["rps"].append(rps)
            res[tname]["p99"].append(p99)
            if pid:
                res[tname]["cpu"].append((cpu_seconds(pid) - before) * 1e6 / max(total, 1))
    print(f"\n## {name}")
    if multi:
        print(f"  pinning: proxy unpinned (cores 0-1, 2 threads/workers), wrk -t2 -c{2 * args.connections} "
              "unpinned, backend nginx on core 0")
    for tname, _, pid in targets:
        r = res[tname]
        if handshake:
            line = f"  {tname:9} {fmt(r['rps'], ' handshakes/s', 0)}"
        else:
            line = f"  {tname:9} {fmt([x / 1000 for x in r['rps']], 'k req/s')}  p99 {fmt(r['p99'], ' ms', 2)}"
        if pid:
            line += f"  CPU {fmt(r['cpu'], ' us/handshake' if handshake else ' us/req')}"
        print(line)
    if "metrics" in flags:
        print(f"  fairlead's /metrics scraped {scrapes[0]} times during its runs")
    if "httplog" in flags:
        for tname, shares in lines.items():
            print(f"  {tname}: lines in rsyslog's file per request {fmt(shares, '', 3)}")
    fr = res["fairlead"]
    if "baseline" in res:
        br = res["baseline"]
        print(f"  ratio fairlead (metrics scraped)/baseline (no counters): CPU/req "
              f"{MED(fr['cpu']) / MED(br['cpu']):.3f}, req/s {MED(fr['rps']) / MED(br['rps']):.3f} "
              "(aim: CPU <= 1.03)")
    for peer in ("haproxy", "nginx"):
        if peer not in res:
            continue
        pr = res[peer]
        unit = "handshake" if handshake else "req"
        rate = "handshakes/s" if handshake else "req/s"
        line = f"  ratio fairlead/{peer}: {rate} {MED(fr['rps']) / MED(pr['rps']):.2f}"
        if not handshake:
            line += f", p99 {MED(fr['p99']) / MED(pr['p99']):.2f}"
        print(line + f", CPU/{unit} {MED(fr['cpu']) / MED(pr['cpu']):.2f}")
    print("  (aim: CPU <= 0.8 against each peer)" if handshake else
          "  (aim: req/s >= 1, p99 <= 1, CPU <= 0.8 against each peer)")


def raise_nofile(args):
    """Raises RLIMIT_NOFILE (the proxies inherit it) for --idle; returns the proxies' maxconn there.

    HAProxy refuses to start unless 2 x maxconn fits the limit; without
    CAP_SYS_RESOURCE the hard limit stays, and --idle is lowered to fit it.
    """
    need = 2 * args.idle + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return args.idle + 1000
        except (ValueError, PermissionError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    maxconn = min(args.idle + 1000, (hard - 100) // 2)
    if args.idle > maxconn - 50 and any(s[1] == "idle" for s in args.scenarios):
        print(f"# note: open files limited to {hard} (no CAP_SYS_RESOURCE), HAProxy's maxconn to {maxconn}: "
              f"--idle {args.idle} lowered to {maxconn - 50}")
        args.idle = maxconn - 50
    return maxconn


def versions(haproxy_bin, nginx_bin, fairlead):
    def first_line(cmd):
        out = subprocess.run(cmd, capture_output=True, text=True)
        return (out.stdout or out.stderr).strip().split("\n")[0]
    here = os.path.dirname(os.path.abspath(__file__))
    describe = first_line(["git", "-C", here, "describe", "--always", "--dirty"])
    return [f"fairlead {fairlead} (tree at {describe})", first_line([haproxy_bin, "-v"]),
            first_line([nginx_bin, "-v"]), first_line(["iperf3", "--version"]), first_line(["wrk", "-v"])]


def parse_args():
    names = "\n".join(f"  {s[0]}" for s in SCENARIOS)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"scenarios (--only: a whole name, or any part of names; case-insensitive):\n{names}")
    ap.add_argument("--duration", type=int, default=None, help="seconds per run (default 10; --quick 5)")
    ap.add_argument("--runs", type=int, default=None, help="runs per target and scenario (default 3; --quick 1)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50; multi-core twice)")
    ap.add_argument("--idle", type=int, default=None,
                    help="idle client connections per burst (default 10000; --quick 2000)")
    ap.add_argument("--quick", action="store_true", help="1 run of 5 s, 2000 idle connections")
    ap.add_argument("--only", default=None,
                    help="comma-separated texts: run only the scenarios whose name contains one of them")
    ap.add_argument("--fairlead", default=None, help="path of the fairlead binary (default: release build)")
    ap.add_argument("--baseline", default=None,
                    help="another fairlead binary (one without counters) for the metrics scenario")
    args = ap.parse_args()
    args.duration = args.duration or (5 if args.quick else 10)
    args.runs = args.runs or (1 if args.quick else 3)
    args.idle = args.idle or (2000 if args.quick else 10000)
    wanted = None
    if args.only:  # names hold commas: the whole text first, else its comma-separated parts
        whole = args.only.strip().lower()
        wanted = [whole] if any(whole in s[0].lower() for s in SCENARIOS) else [
            w.strip().lower() for w in args.only.split(",")]
    def picks(w, s):  # a whole name picks that scenario alone
        return s[0].lower() == w or (w in s[0].lower() and all(t[0].lower() != w for t in SCENARIOS))
    args.scenarios = [s for s in SCENARIOS if not wanted or any(picks(w, s) for w in wanted)]
    if not args.scenarios:
        raise SystemExit(f"--only {args.only} matches no scenario; they are:\n{names}")
    return args


def main():
    args = parse_args()
    for tool in ("wrk", "nginx", "haproxy", "taskset", "iperf3", "rsyslogd", "openssl"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is missing: run scripts/install-deps.sh")
    args.maxconn = raise_nofile(args)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/fairlead-target"))
    fairlead = args.fairlead or os.path.join(target, "release", "fairlead")
    if not args.fairlead:
        subprocess.run(["cargo", "build", "--release", "-p", "fairlead-operator", "--bin", "fairlead"], check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": target})
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    kinds = {s[1] for s in args.scenarios}
    flags = set().union(*(s[3] for s in args.scenarios))

    lab = Lab()
    work = lab.dir
    fl_env = {**os.environ, "RUST_LOG": "warn,rustls=error"}  # s_time sends an IP address as SNI
    try:
        lab.write("www/16k", "x" * 16384)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=localhost", "-keyout", f"{work}/site.key",
                        "-out", f"{work}/site.crt"], check=True, capture_output=True)
        pem = lab.write("site.pem", open(f"{work}/site.crt").read() + open(f"{work}/site.key").read())
        crt, key = f"{work}/site.crt", f"{work}/site.key"
        os.makedirs(f"{work}/rsyslog")

        def start_haproxy(name, ls, cpus="0"):
            cfg = lab.write(f"{name}/haproxy.cfg", conf.haproxy(ls, NGINX_PORT, IPERF_PORT, SYSLOG_PORT, pem))
            return lab.start([haproxy_bin, "-f", cfg], cpus)

        def start_nginx(name, ls, cpus="0"):
            d = f"{work}/{name}"
            cfg = lab.write(f"{name}/nginx.conf",
                            conf.nginx_proxy(d, ls, NGINX_PORT, IPERF_PORT, SYSLOG_PORT, crt, key))
            return lab.start([nginx_bin, "-c", cfg], cpus)

        def start_fairlead(name, ls, binary=fairlead, cpus="0", extra=()):
            yaml = lab.write(f"{name}/fairlead.yaml", conf.fairlead(ls, NGINX_PORT, IPERF_PORT, SYSLOG_PORT))
            return lab.start([binary, "run", "-f", yaml, "-f", pem, "--threads", str(ls.threads), *extra],
                             cpus, env=fl_env)

        lab.write("backend/nginx.conf", conf.backend_nginx(work, NGINX_PORT))
        lab.start([nginx_bin, "-c", f"{work}/backend/nginx.conf"])
        ports = [NGINX_PORT]
        if "httplog" in flags:
            lab.write("rsyslog.conf", conf.RSYSLOG_CONF.format(dir=work, port=SYSLOG_PORT))
            lab.start([rsyslogd, "-n", "-f", f"{work}/rsyslog.conf", "-i", f"{work}/rsyslog/rsyslogd.pid"], "1")
        if "tcp" in kinds:
            # the client reports errors (JSON); the server would print a line on SIGTERM
            lab.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(IPERF_PORT)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_listening(IPERF_PORT)
        haproxy = start_haproxy("haproxy", HAPROXY)
        nginx = start_nginx("nginx", NGINX_PROXY)
        fl = start_fairlead("fairlead", FAIRLEAD, extra=("--metrics-address", f"127.0.0.1:{FAIRLEAD_METRICS_PORT}"))
        ports += [HAPROXY.http, HAPROXY.tls, NGINX_PROXY.http, NGINX_PROXY.tls, FAIRLEAD.http, FAIRLEAD.tls,
                  FAIRLEAD_METRICS_PORT]
        base = None
        if args.baseline and "metrics" in flags:
            base = start_fairlead("baseline", BASELINE, binary=args.baseline)
            ports.append(BASELINE.http)
        multi = {}
        if "multi" in flags:
            multi = {"haproxy": start_haproxy("haproxy-mt", MULTI["haproxy"], "0,1"),
                     "nginx": start_nginx("nginx-mt", MULTI["nginx"], "0,1"),
                     "fairlead": start_fairlead("fairlead-mt", MULTI["fairlead"], cpus="0,1")}
            ports += [ls.http for ls in MULTI.values()]
        for port in ports:
            wait_port(port)
        time.sleep(0.5)
        for p in lab.procs:
            if p.poll() is not None:
                raise SystemExit(f"{p.args} exited with {p.returncode}: is its port taken by another process?")

        print("# " + "\n# ".join(versions(haproxy_bin, nginx_bin, fairlead)))
        print(f"# {args.runs} runs x {args.duration}s per target, alternating; wrk -t1 -c{args.connections}; "
              "proxy + backend nginx on core 0, load on core 1 (unless a scenario says otherwise); "
              "medians (min-max)")
        for name, kind, path, sflags in args.scenarios:
            if kind == "http":
                if "tls" in sflags:
                    targets = [("haproxy", HAPROXY.tls, haproxy.pid), ("nginx", NGINX_PROXY.tls, nginx.pid),
                               ("fairlead", FAIRLEAD.tls, fl.pid)]
                elif "metrics" in sflags:
                    targets = [("haproxy", HAPROXY.http, haproxy.pid), ("fairlead", FAIRLEAD.http, fl.pid)]
                    if base:
                        targets.insert(1, ("baseline", BASELINE.http, base.pid))
                elif "httplog" in sflags:
                    targets = [("haproxy", HAPROXY.log, haproxy.pid), ("nginx", NGINX_PROXY.log, nginx.pid),
                               ("fairlead", FAIRLEAD.log, fl.pid)]
                elif "multi" in sflags:
                    targets = [(n, MULTI[n].http, multi[n].pid) for n in ("haproxy", "nginx", "fairlead")]
                else:
                    targets = [("direct", NGINX_PORT, None), ("haproxy", HAPROXY.http, haproxy.pid),
                               ("nginx", NGINX_PROXY.http, nginx.pid), ("fairlead", FAIRLEAD.http, fl.pid)]
                http_scenario(name, path, sflags, targets, args, work)
            elif kind == "tcp":
                print(f"\n## {name}")
                targets = [("direct", IPERF_PORT, None), ("haproxy", HAPROXY.tcp, haproxy.pid),
                           ("haproxy-splice", HAPROXY.tcp_splice, haproxy.pid)]
                if conf.nginx_has_stream():
                    targets.append(("nginx", NGINX_PROXY.tcp, nginx.pid))
                else:
                    print(f"  nginx: no stream module ({conf.NGINX_STREAM_MODULE}): install libnginx-mod-stream")
                tcp_bulk(targets + [("fairlead", FAIRLEAD.tcp, fl.pid)], args.runs, args.duration)
            else:
                tls = "tls" in sflags
                print(f"\n## {name} ({args.idle} per burst, one GET each then idle; proxy fresh on core 0, "
                      "client on core 1)")

                def fresh(pname, starter):
                    def start():
                        http, tls_port = IDLE_PORTS[pname]
                        proc = starter(f"{pname}-idle", Listeners(http=http, tls=tls_port, maxconn=args.maxconn))
                        wait_port(tls_port if tls else http)
                        return proc, tls_port if tls else http
                    return pname, start
                affinity = os.sched_getaffinity(0)
                os.sched_setaffinity(0, {1})
                try:
                    idle_memory([fresh("haproxy", start_haproxy), fresh("nginx", start_nginx),
                                 fresh("fairlead", start_fairlead)], args.idle, tls)
                finally:
                    os.sched_setaffinity(0, affinity)
            sys.stdout.flush()
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
