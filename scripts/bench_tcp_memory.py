"""Process figures and the two non-HTTP scenarios of scripts/bench.py:
TCP bulk through the proxies with iperf3, and memory held per idle client
connection (RSS from /proc before, with N connections open, after closing).
"""

import json
import os
import socket
import ssl
import statistics
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
MED = statistics.median


def process_tree(pid):
    """pid and its descendants (nginx's master and workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def cpu_seconds(pid):
    """utime + stime of a process, its threads and its children, in seconds."""
    total = 0
    for p in process_tree(pid):
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kib(pid):
    """Resident set size of a process and its children, in KiB."""
    total = 0
    for p in process_tree(pid):
        with open(f"/proc/{p}/status") as f:
            total += int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
    return total


def fmt(values, unit, digits=1):
    return f"{MED(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def run_iperf(port, duration):
    """One iperf3 stream from core 1 for `duration` s: (Gbit/s, bytes received)."""
    cmd = ["taskset", "-c", "1", "iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(duration), "-J"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    try:
        result = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"iperf3 to port {port} printed no JSON: {out.stdout[:300]} {out.stderr[:300]}")
    if "error" in result:
        raise SystemExit(f"iperf3 to port {port}: {result['error']}")
    received = result["end"]["sum_received"]
    return received["bits_per_second"] / 1e9, received["bytes"]


def tcp_bulk(targets, runs, duration):
    """targets: (name, port, pid or None). Prints Gbit/s and proxy CPU per GB, alternating targets."""
    res = {t[0]: {"gbps": [], "cpu": []} for t in targets}
    for _ in range(runs):
        for name, port, pid in targets:
            before = cpu_seconds(pid) if pid else 0.0
            gbps, received = run_iperf(port, duration)
            res[name]["gbps"].append(gbps)
            if pid:
                res[name]["cpu"].append((cpu_seconds(pid) - before) / (received / 1e9))
            time.sleep(0.5)  # iperf3's server takes the next test once this one is torn down
    for name, _, pid in targets:
        line = f"  {name:14} {fmt(res[name]['gbps'], ' Gbit/s', 2)}"
        if pid:
            line += f"  proxy CPU {fmt(res[name]['cpu'], ' s/GB', 3)}"
        print(line)
    fl = res["fairlead"]
    for peer in [t[0] for t in targets if t[0] != "fairlead"]:
        line = f"  ratio fairlead/{peer}: Gbit/s {MED(fl['gbps']) / MED(res[peer]['gbps']):.2f}"
        if res[peer]["cpu"]:
            line += f", CPU/GB {MED(fl['cpu']) / MED(res[peer]['cpu']):.2f}"
        print(line)
    print("  (aim: Gbit/s >= HAProxy's at equal or lower CPU/GB, >= 0.7 of direct)")


def read_response(sock):
    """Reads one HTTP/1.1 response with a Content-Length; raises SystemExit unless it is a 200."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit(f"connection closed before a response, after {buf[:200]!r}")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"idle-connection client got {head[:100]!r}")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("connection closed in the middle of a response body")
        body += chunk


def open_idle(port, count, tls):
    """`count` connections, each after one keep-alive GET, left open."""
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if ctx:
                s = ctx.wrap_socket(s)
            socks.append(s)
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            read_response(s)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def idle_memory(proxies, count, tls, bursts=3):
    """proxies: (name, start) where start() runs a fresh proxy and returns (Popen, port).

    Each proxy in turn: RSS at start, then `bursts` times: open `count`
    connections (one request each, then idle), RSS, close them all, RSS.
    KiB per connection is (RSS open - RSS at start) / count, each burst.
    """
    per_conn, kept = {}, {}
    for name, start in proxies:
        proc, port = start()
        try:
            time.sleep(1)
            start_rss = rss_kib(proc.pid)
            per_conn[name], sizes = [], []
            for _ in range(bursts):
                socks = open_idle(port, count, tls)
                time.sleep(1)
                open_rss = rss_kib(proc.pid)
                close_all(socks)
                time.sleep(2)
                closed_rss = rss_kib(proc.pid)
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode} during the idle-connection burst")
                per_conn[name].append((open_rss - start_rss) / count)
                sizes.append(f"{open_rss / 1024:.1f}/{closed_rss / 1024:.1f}")
            kept[name] = (closed_rss - start_rss) / 1024
            print(f"  {name:9} RSS MB: start {start_rss / 1024:.1f}, open/closed {', '.join(sizes)}; "
                  f"KiB/conn {' '.join(f'{k:.1f}' for k in per_conn[name])}; "
                  f"kept after the last close {kept[name]:.1f} MB")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    fl = MED(per_conn["fairlead"])
    for peer in [p for p in per_conn if p != "fairlead"]:
        print(f"  ratio fairlead/{peer}: KiB per idle connection {fl / MED(per_conn[peer]):.2f} "
              "(medians of the bursts)")
    print("  (aim: <= 2 x HAProxy's per connection; memory returned to the system after the bursts close)")
