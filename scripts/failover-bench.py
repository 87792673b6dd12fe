#!/usr/bin/env python3
"""VRRP failover time of fairlead and Keepalived, side by side (run as root).

Setup: network namespaces PREFIX-br (bridge br0), PREFIX-n1 and PREFIX-n2
(the nodes, eth0 10.78.0.1 and .2, fd78::1 and ::2) and PREFIX-c (the
client, .9 and fd78::9), all made here and removed on exit, Ctrl-C
included; duplicate address detection is off in all of them, so IPv6
addresses are usable at once. The virtual IP is 10.78.0.100/24 (fd78::100/64
in scenario e); n1 has priority 120 (master), n2 110 (backup), preemption on.

Each node runs a name server: a python listener that sends the node's name
and closes. fairlead nodes run `fairlead run` with a tcp Frontend bound to
the VirtualIP port 80 (IP_FREEBIND) relaying to the name server on
127.0.0.1:8080. Keepalived nodes (`keepalived -P -n`, no proxy) run the same
name server directly on VIP:80 with IP_FREEBIND (IPV6_FREEBIND for IPv6),
so in both setups whatever answers on the VIP answers at once.

One run: start both nodes, wait until n1 holds the VIP and the client reads
"n1" from VIP:80, kill n1 (SIGKILL to its process group, or SIGTERM for the
graceful scenario) at t0, then measure
  - VIP: until n2 holds the address (a thread in n2 binds a socket to it
    every 1 ms; bind fails while the address is not local), and
  - client: until a TCP connect from the client to VIP:80 reads "n2"; a new
    non-blocking connect starts every 3 ms, each with a 30 ms timeout. A killed master keeps the VIP on its interface, so
    the client may still reach n1 (RST from n1's kernel for fairlead, n1's
    name server for Keepalived) until the new master's gratuitous ARP
    (unsolicited neighbour advertisement for IPv6) updates the client's
    neighbour entry; those answers are counted, not taken as success.
  - takeover past the protocol: the client captures every VRRP
    advertisement with kernel timestamps (a packet socket for IPv4, a raw
    IPv6 socket joined to ff02::12 for IPv6, where the sources are the
    nodes' link-local addresses); from n1's last one (its priority 0
    one on a graceful stop) to n2's first as master, minus the interval the
    RFC makes n2 wait (Master_Down_Interval, or Skew_Time after priority 0).
    Unlike the two above, this does not depend on where in the interval the
    kill fell: it is how late n2's timer fired, plus the time to act on it.
Then everything on the nodes is killed, leftover VIPs removed and the
client's neighbour table flushed. Runs alternate between the two
implementations.

Scenarios: a) 1 s adverts VRRPv2, b) 100 ms v3, c) 10 ms v3 (SIGKILL, 20
runs each), d) graceful stop (SIGTERM) at 100 ms v3 (10 runs), e) as b
over IPv6: VRRPv3 to ff02::12, VIP fd78::100/64 (20 runs), and with
--soak MINUTES: both implementations at once (VRID 51 and 52) at 10 ms v3
with both cores busy (one python busy loop per CPU), counting VRRP state
transitions after the first election. Prints median, p99 (nearest rank),
min-max and the fairlead/Keepalived ratio of medians; not a pass/fail test.

Usage: scripts/failover-bench.py [--runs N] [--quick] [--only a,b,c,d,e]
       [--soak MINUTES] [--fairlead PATH] [--keepalived PATH] [--logs DIR]
"""

import argparse
import atexit
import ctypes
import errno
import math
import os
import random
import re
import select
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SUBNET = "10.78.0"
VIP = f"{SUBNET}.100"
SOAK_VIP = f"{SUBNET}.101"
NODES = {"n1": (f"{SUBNET}.1", 120), "n2": (f"{SUBNET}.2", 110)}
CLIENT_ADDR = f"{SUBNET}.9"
SUBNET6 = "fd78:"
VIP6 = f"{SUBNET6}:100"
NODES6 = {"n1": f"{SUBNET6}:1", "n2": f"{SUBNET6}:2"}
CLIENT_ADDR6 = f"{SUBNET6}:9"
VRID = 51
VIP_PORT = 80
NAME_PORT = 8080
CONNECT_TIMEOUT = 0.030
PROBE_GAP = 0.003
VIP_POLL = 0.001
FAILOVER_LIMIT = 10.0
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)

# name, advert interval (s), VRRP version, signal, default runs, virtual IP
SCENARIOS = {
    "a": ("SIGKILL, advert 1 s, VRRPv2", 1.0, 2, signal.SIGKILL, 20, VIP),
    "b": ("SIGKILL, advert 100 ms, VRRPv3", 0.1, 3, signal.SIGKILL, 20, VIP),
    "c": ("SIGKILL, advert 10 ms, VRRPv3", 0.01, 3, signal.SIGKILL, 20, VIP),
    "d": ("SIGTERM (graceful), advert 100 ms, VRRPv3", 0.1, 3, signal.SIGTERM, 10, VIP),
    "e": ("SIGKILL, advert 100 ms, VRRPv3 over IPv6", 0.1, 3, signal.SIGKILL, 20, VIP6),
}

NAME_SERVER = r"""
import socket, sys
name, host, port, freebind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
v6 = ":" in host
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if freebind and v6:
    s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
elif freebind:
    s.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND
s.bind((host, port))
s.listen(512)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(name.encode())
    except OSError:
        pass
    c.close()
"""

BUSY_LOOP = "while True: pass"


class SetupError(Exception):
    pass


def sh(*argv, check=True, timeout=10):
    """Runs a command, bounded in time; returns its stdout."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise SetupError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def enter_netns(ns):
    """Moves the calling thread (only) into network namespace `ns`."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def with_prefix(addr):
    """The virtual IP as configured: /64 for IPv6, /24 for IPv4."""
    return f"{addr}/64" if ":" in addr else f"{addr}/24"


def fmt_ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def p99(values):
    s = sorted(values)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


class Lab:
    """The namespaces, the processes started in them, and their removal."""

    def __init__(self, logdir):
        self.prefix = f"flb{os.getpid()}"
        self.br = f"{self.prefix}-br"
        self.ns = {n: f"{self.prefix}-{n}" for n in NODES}
        self.client = f"{self.prefix}-c"
        self.logdir = logdir
        self.procs = []
        self.made = []
        self.macs = {}
        self.link_local = {}
        self.cleaned = False

    def setup(self):
        for ns in [self.br, *self.ns.values(), self.client]:
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            # No duplicate address detection, so link-local and global
            # IPv6 addresses are usable at once.
            for conf in ("all", "default"):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw",
                   f"net.ipv6.conf.{conf}.accept_dad=0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge",
           "mcast_snooping", "0")
        sh("ip", "-n", self.br, "link", "set", "br0", "up")
        ends = [(n, ns, NODES[n][0], NODES6[n]) for n, ns in self.ns.items()]
        ends.append(("c", self.client, CLIENT_ADDR, CLIENT_ADDR6))
        for port, ns, addr, addr6 in ends:
            sh("ip", "-n", self.br, "link", "add", port, "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.br, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{addr6}/64", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            link = sh("ip", "-n", ns, "-o", "link", "show", "eth0")
            self.macs[port] = re.search(r"link/ether (\S+)", link).group(1)
            # VRRPv3 over IPv6 advertises from the link-local address.
            ll = sh("ip", "-n", ns, "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
            found = re.search(r"inet6 (fe80::\S+)/64", ll)
            if not found or "tentative" in ll:
                raise SetupError(f"{ns}: eth0 has no usable link-local address: {ll.strip()!r}")
            self.link_local[port] = found.group(1)

    def spawn(self, ns, argv, log, env=None, stdout_pipe=False):
        out = open(os.path.join(self.logdir, log), "ab")
        cmd = ["ip", "netns", "exec", ns, *argv] if ns else argv
        p = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else out,
            stderr=out, start_new_session=True, env=env)
        out.close()
        p.log = os.path.join(self.logdir, log)
        self.procs.append(p)
        return p

    def kill(self, p, sig=signal.SIGKILL):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass

    def reap(self, p, timeout=5.0):
        """Waits for p (SIGKILL to its group after `timeout`); forgets it."""
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(p)
            p.wait(timeout=5)
        # The group may hold children (keepalived's VRRP process).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.stdout:
            p.stdout.close()
        if p in self.procs:
            self.procs.remove(p)

    def kill_all(self):
        for p in list(self.procs):
            self.kill(p)
        for p in list(self.procs):
            self.reap(p)

    def holds(self, node, addr=VIP):
        fam = "-6" if family(addr) == socket.AF_INET6 else "-4"
        out = sh("ip", "-n", self.ns[node], fam, "-o", "addr", "show", "dev", "eth0")
        return f" {addr}/" in out

    def reset_nodes(self):
        self.kill_all()
        for node, ns in self.ns.items():
            for addr in (VIP, SOAK_VIP, VIP6):
                if self.holds(node, addr):
                    sh("ip", "-n", ns, "addr", "del", with_prefix(addr), "dev", "eth0")
        # Without -4/-6 this flushes IPv4 and IPv6 entries (iproute2 6.1).
        sh("ip", "-n", self.client, "neigh", "flush", "all")

    def cleanup(self):
        if self.cleaned:
            return
        self.cleaned = True
        try:
            self.kill_all()
        finally:
            for ns in reversed(self.made):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def wait_ready(p, what, timeout=5.0):
    """Waits for the "ready" line of a name server."""
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    line = p.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        raise SetupError(f"{what} did not start (see {p.log})")


def fairlead_manifests(directory, interval, version, vrid=VRID, vip=VIP, port=VIP_PORT):
    interval_text = f"{round(interval * 1000)}ms" if interval < 1 else f"{round(interval)}s"
    prios = "\n".join(f"    - {{node: {n}, priority: {pr}}}" for n, (_, pr) in NODES.items())
    text = f"""apiVersion: fairlead.io/v1alpha1
kind: VirtualIP
metadata:
  name: bench-vip
spec:
  addresses: ["{with_prefix(vip)}"]
  virtualRouterID: {vrid}
  advertInterval: {interval_text}
  version: {version}
  priorities:
{prios}
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata:
  name: names
spec:
  mode: tcp
  bind: {{virtualIP: bench-vip, port: {port}}}
  defaultBackend: names
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata:
  name: names
spec:
  mode: tcp
  servers:
    - {{name: local, address: 127.0.0.1, port: {NAME_PORT}}}
"""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "bench.yaml"), "w") as f:
        f.write(text)


def keepalived_conf(path, node, interval, version, vrid=VRID, vip=VIP):
    lines = ["global_defs {", f"    router_id {node}",
             # One burst of 5 gratuitous ARPs 100 ms apart, as fairlead's default
             # (Keepalived 2.2.7 sends only the first 2 with an interval set;
             # on this bridge the first is the one that counts).
             "    vrrp_garp_master_delay 0", "    vrrp_garp_master_repeat 5",
             "    vrrp_garp_interval 0.1"]
    if family(vip) == socket.AF_INET6:
        # The same for unsolicited neighbour advertisements (again only 2
        # are sent; with no interval all 5 go out at once).
        lines.append("    vrrp_gna_interval 0.1")
    if version == 3:
        lines.append("    vrrp_version 3")
    lines += ["}", "vrrp_instance bench {", "    state BACKUP", "    interface eth0",
              f"    virtual_router_id {vrid}", f"    priority {NODES[node][1]}",
              f"    advert_int {interval:g}",
              "    virtual_ipaddress {", f"        {with_prefix(vip)} dev eth0", "    }", "}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


class Bench:
    def __init__(self, args, lab):
        self.args = args
        self.lab = lab
        self.run_no = 0

    # --- starting nodes -------------------------------------------------

    def start_names(self, impl, node, vip=VIP):
        ns = self.lab.ns[node]
        host, port, freebind = (("127.0.0.1", NAME_PORT, "0") if impl == "fairlead"
                                else (vip, VIP_PORT, "1"))
        p = self.lab.spawn(ns, [sys.executable, "-I", "-S", "-c", NAME_SERVER,
                                node, host, str(port), freebind],
                           f"names-{node}.log", stdout_pipe=True)
        wait_ready(p, f"name server on {node}")
        return p

    def start_daemon(self, impl, node, interval, version, tag, vrid=VRID, vip=VIP):
        d = os.path.join(self.lab.logdir, tag)
        os.makedirs(d, exist_ok=True)
        if impl == "fairlead":
            mdir = os.path.join(d, "manifests")
            fairlead_manifests(mdir, interval, version, vrid, vip)
            env = dict(os.environ, RUST_LOG="info")
            return self.lab.spawn(self.lab.ns[node], [
                self.args.fairlead, "run", "-f", mdir, "--node-name", node,
                "--threads", "1", "--shutdown-grace", "1s"],
                f"{tag}/fairlead-{node}.log", env=env)
        conf = os.path.join(d, f"keepalived-{node}.conf")
        keepalived_conf(conf, node, interval, version, vrid, vip)
        pid = os.path.join(d, f"keepalived-{node}")
        return self.lab.spawn(self.lab.ns[node], [
            self.args.keepalived, "-f", conf, "-P", "-n", "-l", "-D", "-G",
            "-p", pid + ".pid", "-r", pid + "-vrrp.pid", "-c", pid + "-checkers.pid"],
            f"{tag}/keepalived-{node}.log")

    def wait_master(self, daemons, interval, vip=VIP):
        """Until n1 holds the VIP and n2 does not (bounded)."""
        deadline = time.monotonic() + 5 * interval + 5
        while time.monotonic() < deadline:
            for node, p in daemons.items():
                if p.poll() is not None:
                    raise SetupError(f"{node} exited with {p.returncode} (see {p.log})")
            if self.lab.holds("n1", vip) and not self.lab.holds("n2", vip):
                return
            time.sleep(0.02)
        raise SetupError(f"n1 did not become the only holder of {vip} (logs in {self.lab.logdir})")

    # --- measuring -------------------------------------------------------

    def client_reads(self, vip, expect, timeout):
        """Connects from the client until it reads `expect` (bounded)."""
        result = {}

        def probe():
            enter_netns(self.lab.client)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if read_name(vip) == expect:
                    result["ok"] = True
                    return
                time.sleep(0.01)

        t = threading.Thread(target=probe, daemon=True)
        t.start()
        t.join(timeout + 2)
        return result.get("ok", False)

    def one_run(self, impl, sc_key, tag):
        _, interval, version, sig, _, vip = SCENARIOS[sc_key]
        lab = self.lab
        for n in NODES:
            self.start_names(impl, n, vip)
        daemons = {n: self.start_daemon(impl, n, interval, version, tag, vip=vip) for n in NODES}
        self.wait_master(daemons, interval, vip)
        if not self.client_reads(vip, "n1", 3.0):
            raise SetupError(f"client cannot read n1 from {vip} port {VIP_PORT} ({impl})")
        # Let the backup learn the master's advertisements, check again, and
        # kill at a random phase of the advertisement interval.
        time.sleep(max(2 * interval, 0.3))
        self.wait_master(daemons, interval, vip)
        # Advertisement sources: the nodes' addresses, link-local for IPv6.
        sources = ({n: lab.link_local[n] for n in NODES} if family(vip) == socket.AF_INET6
                   else {n: NODES[n][0] for n in NODES})

        go = threading.Event()
        ready = threading.Barrier(4, timeout=5)
        res = {"vip": None, "client": None, "refused": 0, "timeout": 0,
               "old_master": 0, "other": 0, "why": set(), "errors": [], "adverts": []}

        def watch_vip():
            try:
                enter_netns(lab.ns["n2"])
            except OSError as e:
                res["errors"].append(str(e))
            ready.wait()
            go.wait(10)
            deadline = time.monotonic() + FAILOVER_LIMIT
            while time.monotonic() < deadline:
                s = socket.socket(family(vip), socket.SOCK_DGRAM)
                try:
                    s.bind((vip, 0))
                    res["vip"] = time.monotonic()
                    return
                except OSError:
                    pass
                finally:
                    s.close()
                time.sleep(VIP_POLL)

        def watch_client():
            try:
                enter_netns(lab.client)
            except OSError as e:
                res["errors"].append(str(e))
            ready.wait()
            go.wait(10)
            end = probe_until_name(vip, "n2", time.monotonic() + FAILOVER_LIMIT, res)
            res["client"] = end

        def watch_adverts():
            try:
                enter_netns(lab.client)
                capture_adverts(ready, res["adverts"], interval, time.monotonic() + FAILOVER_LIMIT,
                                sources, family(vip) == socket.AF_INET6)
            except OSError as e:
                res["errors"].append(f"advert capture: {e}")

        threads = [threading.Thread(target=f, daemon=True)
                   for f in (watch_vip, watch_client, watch_adverts)]
        for t in threads:
            t.start()
        ready.wait()
        # The capture saw an advertisement from n1 at most an interval ago:
        # the kill lands at a random phase of the advertisement interval.
        time.sleep(random.uniform(0, interval))
        master = daemons["n1"]
        os.killpg(master.pid, sig) if sig == signal.SIGKILL else os.kill(master.pid, sig)
        t0 = time.monotonic()
        go.set()
        for t in threads:
            t.join(FAILOVER_LIMIT + 2)
        if res["errors"]:
            raise SetupError("; ".join(res["errors"]))
        neigh = sh("ip", "-n", lab.client, "neigh", "show", vip).strip()
        if sig != signal.SIGKILL:
            lab.reap(master, timeout=5)
        alive_n2 = daemons["n2"].poll() is None
        lab.reset_nodes()
        return {
            "vip": None if res["vip"] is None else res["vip"] - t0,
            "client": None if res["client"] is None else res["client"] - t0,
            "refused": res["refused"], "timeout": res["timeout"],
            "old_master": res["old_master"], "other": res["other"], "why": res["why"],
            "neigh_n2": lab.macs["n2"] in neigh, "n2_alive": alive_n2,
            "late": takeover_late(res["adverts"], interval, sources),
        }

    def scenario(self, key, runs):
        title = SCENARIOS[key][0]
        results = {"fairlead": [], "keepalived": []}
        print(f"\n== {key}) {title}: {runs} runs per implementation", flush=True)
        for i in range(runs):
            order = ("keepalived", "fairlead") if i % 2 == 0 else ("fairlead", "keepalived")
            for impl in order:
                self.run_no += 1
                tag = f"{key}-{impl}-{i + 1:02d}"
                failures = 0
                while True:
                    try:
                        r = self.one_run(impl, key, tag)
                        break
                    except SetupError as e:
                        failures += 1
                        print(f"   {tag}: setup failed: {e}", flush=True)
                        self.lab.reset_nodes()
                        if failures >= 3:
                            raise
                results[impl].append(r)
                show = lambda v: "none" if v is None else fmt_ms(v)
                late = "none" if r["late"] is None else f"{r['late'] * 1e6:.0f} µs"
                print(f"   {tag}: VIP {show(r['vip'])}, client {show(r['client'])},"
                      f" takeover past the protocol {late}"
                      f" (refused {r['refused']}, timed out {r['timeout']},"
                      f" answered by old master {r['old_master']}, other {r['other']}"
                      + (f": {', '.join(sorted(r['why']))}" if r["why"] else "") + ")",
                      flush=True)
        return results

    # --- soak -----------------------------------------------------------

    def soak(self, minutes):
        print(f"\n== soak: fairlead (VRID 51, {VIP}) and Keepalived (VRID 52, {SOAK_VIP})"
              f" at once, 10 ms adverts VRRPv3, {minutes:g} min, {os.cpu_count()} busy loops",
              flush=True)
        lab = self.lab
        for n in NODES:
            self.start_names("fairlead", n)
        daemons = {}
        for impl, vrid, vip in (("fairlead", 51, VIP), ("keepalived", 52, SOAK_VIP)):
            daemons[impl] = {n: self.start_daemon(impl, n, 0.01, 3, "soak", vrid, vip)
                             for n in NODES}
        for impl, vip in (("fairlead", VIP), ("keepalived", SOAK_VIP)):
            self.wait_master(daemons[impl], 0.01, vip)
        time.sleep(2)
        pattern = {"fairlead": re.compile(rb"VRRP state changed"),
                   "keepalived": re.compile(rb"Entering (MASTER|BACKUP|FAULT) STATE")}

        def count(impl):
            total = 0
            for p in daemons[impl].values():
                with open(p.log, "rb") as f:
                    total += len(pattern[impl].findall(f.read()))
            return total

        base = {impl: count(impl) for impl in daemons}
        busy = [lab.spawn(None, [sys.executable, "-c", BUSY_LOOP], "busy.log")
                for _ in range(os.cpu_count() or 2)]
        end = time.monotonic() + minutes * 60
        died = None
        while time.monotonic() < end and died is None:
            time.sleep(min(5, max(0, end - time.monotonic())))
            for impl, ds in daemons.items():
                for n, p in ds.items():
                    if p.poll() is not None:
                        died = f"{impl} on {n} exited with {p.returncode}"
        for p in busy:
            lab.kill(p)
            lab.reap(p)
        out = {}
        for impl, vip in (("fairlead", VIP), ("keepalived", SOAK_VIP)):
            out[impl] = {"transitions": count(impl) - base[impl],
                         "n1_holds": lab.holds("n1", vip), "n2_holds": lab.holds("n2", vip)}
        lab.reset_nodes()
        if died:
            raise SetupError(f"during the soak {died}")
        return out


SO_TIMESTAMPNS = 35
ETH_P_IP = 0x0800
VRRP_PROTO = 112
VRRP_GROUP6 = "ff02::12"


def capture_socket(v6):
    """A socket receiving VRRP advertisements on the client's eth0 with
    kernel receive timestamps: for IPv4 a packet socket (the IPv4 header
    included), for IPv6 a raw socket for protocol 112 joined to ff02::12
    (the VRRP header only; the source comes with recvmsg)."""
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, VRRP_PROTO)
    else:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if v6:
            group = socket.inet_pton(socket.AF_INET6, VRRP_GROUP6)
            ifindex = socket.if_nametoindex("eth0").to_bytes(4, sys.byteorder)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + ifindex)
        else:
            s.bind(("eth0", ETH_P_IP))
    except OSError:
        s.close()
        raise
    return s


def parse_advert(data, addr, v6):
    """(source, priority) of a received VRRP advertisement, or None."""
    if v6:
        # Version 3, type 1 (advertisement), our VRID.
        if len(data) < 8 or data[0] != 0x31 or data[1] != VRID:
            return None
        return addr[0].split("%")[0], data[2]
    if len(data) < 20 or data[9] != VRRP_PROTO:
        return None
    ihl = (data[0] & 0x0F) * 4
    if len(data) < ihl + 4:
        return None
    return socket.inet_ntoa(data[12:16]), data[ihl + 2]


def capture_adverts(ready, adverts, interval, deadline, sources, v6):
    """In the client's namespace: appends (kernel receive time in s, source,
    priority) of each VRRP advertisement until n2 (source address
    sources["n2"]) advertised as master with priority > 0, or the deadline.
    Waits on `ready` once it saw one from n1 (or after two intervals), so
    n1's last one before the kill is caught."""
    s = capture_socket(v6)
    try:
        n1, n2 = sources["n1"], sources["n2"]
        first_seen = time.monotonic() + 2 * interval
        waiting = True
        while (left := deadline - time.monotonic()) > 0:
            if waiting and (time.monotonic() >= first_seen
                            or any(a[1] == n1 for a in adverts)):
                ready.wait()
                waiting = False
            if waiting:
                left = min(left, max(0.001, first_seen - time.monotonic()))
            s.settimeout(left)
            try:
                data, anc, _, addr = s.recvmsg(128, socket.CMSG_SPACE(16))
            except socket.timeout:
                if waiting:
                    continue
                return
            advert = parse_advert(data, addr, v6)
            stamp = next((int.from_bytes(d[:8], "little") + int.from_bytes(d[8:16], "little") / 1e9
                          for level, kind, d in anc
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            if advert is None or stamp is None:
                continue
            source, priority = advert
            adverts.append((stamp, source, priority))
            if source == n2 and priority > 0:
                return
    finally:
        s.close()


def takeover_late(adverts, interval, sources):
    """How long after the RFC let it n2 advertised as master: from n1's last
    advertisement, minus Master_Down_Interval (Skew_Time after priority 0)."""
    n1, n2 = sources["n1"], sources["n2"]
    first = next((a for a in adverts if a[1] == n2 and a[2] > 0), None)
    last = [a for a in adverts if a[1] == n1 and first and a[0] < first[0]]
    if not first or not last:
        return None
    skew = (256 - NODES["n2"][1]) * interval / 256
    wait = skew if last[-1][2] == 0 else 3 * interval + skew
    return first[0] - last[-1][0] - wait


def probe_until_name(addr, expect, deadline, tally):
    """Starts a non-blocking TCP connect to addr:80 every PROBE_GAP, each
    given CONNECT_TIMEOUT, so a probe stuck on a stale neighbour entry does
    not delay the next one; returns the time the first one read `expect`,
    or None at the deadline. Failed probes are counted into `tally`."""
    sel = selectors.DefaultSelector()
    inflight = {}  # socket -> [started, bytes read]

    def finish(sock, key, why=None):
        sel.unregister(sock)
        sock.close()
        del inflight[sock]
        tally[key] += 1
        if why:
            tally["why"].add(why)

    next_start = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_start:
                sock = socket.socket(family(addr))
                sock.setblocking(False)
                err = sock.connect_ex((addr, VIP_PORT))
                if err not in (0, errno.EINPROGRESS):
                    sock.close()
                    tally["other"] += 1
                    tally["why"].add(f"connect error {err}")
                else:
                    sel.register(sock, selectors.EVENT_WRITE)
                    inflight[sock] = [now, b""]
                next_start = now + PROBE_GAP
            for key, events in sel.select(max(0.0, min(next_start, deadline) - now)):
                sock = key.fileobj
                state = inflight[sock]
                if events & selectors.EVENT_WRITE:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err == errno.ECONNREFUSED:
                        finish(sock, "refused")
                    elif err:
                        finish(sock, "other", f"error {err}")
                    else:
                        sel.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    chunk = sock.recv(64)
                except OSError as e:
                    finish(sock, "other", f"error {e.errno}")
                    continue
                state[1] += chunk
                if state[1] == expect.encode():
                    return time.monotonic()
                if not chunk or len(state[1]) >= 64:
                    name = state[1].decode(errors="replace")
                    if name == "n1":
                        finish(sock, "old_master")
                    else:
                        finish(sock, "other", f"read {name!r}")
            now = time.monotonic()
            for sock, (started, _) in list(inflight.items()):
                if now - started > CONNECT_TIMEOUT:
                    finish(sock, "timeout")
    finally:
        for sock in list(inflight):
            sock.close()
        sel.close()


def read_name(addr):
    """One TCP connect to addr:80; the name read, or why there was none."""
    s = socket.socket(family(addr))
    s.settimeout(CONNECT_TIMEOUT)
    try:
        s.connect((addr, VIP_PORT))
        data = b""
        while len(data) < 64:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return f"error {e.errno}"
    finally:
        s.close()


def summary(values):
    if not values:
        return "no successful run", None
    med = statistics.median(values)
    return (f"{fmt_ms(med)} / {fmt_ms(p99(values))} / "
            f"{fmt_ms(min(values))}–{fmt_ms(max(values))}"), med


def report(all_results, soak):
    medians = {}
    if all_results:
        print("\n## VRRP failover (median / p99 / min–max from the kill)\n")
        print("| scenario | implementation | runs | VIP held by backup | client connect answered by backup |")
        print("|---|---|---|---|---|")
        for key, results in all_results.items():
            for impl in ("keepalived", "fairlead"):
                rs = results[impl]
                vip = [r["vip"] for r in rs if r["vip"] is not None]
                cli = [r["client"] for r in rs if r["client"] is not None]
                vtext, vmed = summary(vip)
                ctext, cmed = summary(cli)
                medians[(key, impl)] = (vmed, cmed, cli)
                missing = len(rs) - len(cli)
                runs = f"{len(rs)}" + (f" ({missing} without failover in {FAILOVER_LIMIT:g} s)" if missing else "")
                print(f"| {key}) {SCENARIOS[key][0]} | {impl} | {runs} | {vtext} | {ctext} |")
        print()
        for key in all_results:
            fv, fc, _ = medians[(key, "fairlead")]
            kv, kc, _ = medians[(key, "keepalived")]
            ratio = lambda f, k: f"{f / k:.2f}" if f is not None and k else "n/a"
            gaps = {impl: [r["client"] - r["vip"] for r in all_results[key][impl]
                           if r["client"] is not None and r["vip"] is not None]
                    for impl in ("fairlead", "keepalived")}
            gap = ", ".join(f"{impl} {fmt_ms(statistics.median(g))}" for impl, g in gaps.items() if g)
            print(f"{key}) fairlead/Keepalived medians: VIP {ratio(fv, kv)}, client {ratio(fc, kc)};"
                  f" client answered after the VIP moved (median): {gap}")
        print("\nTakeover past the protocol (n2's first advertisement as master after n1's last,"
              " minus Master_Down_Interval, or Skew_Time after priority 0; kernel timestamps at"
              " the client), median / p99 / min–max:")
        for key, results in all_results.items():
            lates = {}
            for impl in ("keepalived", "fairlead"):
                ls = sorted(r["late"] * 1e6 for r in results[impl] if r["late"] is not None)
                lates[impl] = statistics.median(ls) if ls else None
                text = (f"{statistics.median(ls):.0f} / {p99(ls):.0f} / {ls[0]:.0f}–{ls[-1]:.0f} µs"
                        if ls else "no run")
                print(f"  {key}) {impl}: {text} ({len(ls)} runs)")
            f, k = lates["fairlead"], lates["keepalived"]
            if f is not None and k is not None:
                print(f"  {key}) fairlead − Keepalived: {f - k:+.0f} µs")
        print("\nClient probes after the kill (sums over runs): refused = RST from the old master's"
              " kernel, answered by old master = its listener still answering, timed out = no"
              " answer in 30 ms (SYN sent to the old master's MAC, or ARP or neighbour solicitation"
              " unanswered).")
        for key, results in all_results.items():
            for impl in ("keepalived", "fairlead"):
                rs = results[impl]
                tot = {k: sum(r[k] for r in rs) for k in ("refused", "timeout", "old_master", "other")}
                garp = sum(1 for r in rs if r["neigh_n2"])
                why = sorted(set().union(*(r["why"] for r in rs)))
                other = f"other {tot['other']}" + (f" ({', '.join(why)})" if why else "")
                print(f"  {key}) {impl}: refused {tot['refused']}, answered by old master"
                      f" {tot['old_master']}, timed out {tot['timeout']}, {other};"
                      f" client neighbour entry pointed at n2 afterwards in {garp}/{len(rs)} runs")
    print("\nAims:")

    def aim(text, ok):
        state = "n/a" if ok is None else ("met" if ok else "NOT met")
        print(f"  - {text}: {state}")

    for key in all_results:
        fc = medians[(key, "fairlead")][1]
        kc = medians[(key, "keepalived")][1]
        aim(f"{key}) fairlead median <= Keepalived median (client)",
            None if fc is None or kc is None else fc <= kc)
    if "b" in all_results:
        cli = medians[("b", "fairlead")][2]
        aim("b) fairlead under 500 ms at 100 ms adverts (p99, client)",
            p99(cli) < 0.5 if cli else None)
    if "c" in all_results:
        fc = medians[("c", "fairlead")][1]
        aim("c) fairlead median under 50 ms at 10 ms adverts (client)",
            None if fc is None else fc < 0.05)
    if soak:
        for impl, s in soak.items():
            print(f"  soak {impl}: {s['transitions']} state transitions after the first election;"
                  f" VIP on n1 at the end: {s['n1_holds']}, on n2: {s['n2_holds']}")
        aim("soak: fairlead zero spurious transitions", soak["fairlead"]["transitions"] == 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, help="runs per scenario and implementation"
                    " (default 20, 10 for d)")
    ap.add_argument("--quick", action="store_true", help="3 runs each (a smoke check)")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"scenarios, comma separated: {','.join(SCENARIOS)}")
    ap.add_argument("--soak", type=float, default=0, metavar="MINUTES",
                    help="also run the loaded soak for MINUTES (default off)")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/fairlead-target"))
    ap.add_argument("--fairlead", default=os.path.join(target, "release", "fairlead"))
    ap.add_argument("--keepalived", default=shutil.which("keepalived") or "/usr/sbin/keepalived")
    ap.add_argument("--logs", help="keep daemon logs in this directory (default: a temporary"
                    " directory, removed at exit)")
    args = ap.parse_args()
    keys = [k for k in args.only.split(",") if k]
    bad = [k for k in keys if k not in SCENARIOS]
    if bad:
        ap.error(f"--only: unknown scenario {','.join(bad)} (choose from {','.join(SCENARIOS)})")
    if os.geteuid() != 0:
        ap.error("run as root (network namespaces)")
    for path, what in ((args.fairlead, "--fairlead"), (args.keepalived, "--keepalived")):
        if not os.access(path, os.X_OK):
            ap.error(f"{what}: {path} is not an executable")

    logdir = args.logs or tempfile.mkdtemp(prefix="failover-bench-")
    os.makedirs(logdir, exist_ok=True)
    lab = Lab(logdir)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(lab.cleanup)
    if not args.logs:
        atexit.register(shutil.rmtree, logdir, True)

    version = subprocess.run([args.fairlead, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    kv = subprocess.run([args.keepalived, "--version"], capture_output=True, text=True,
                        timeout=10)
    kversion = ((kv.stdout + kv.stderr).splitlines() or ["keepalived ?"])[0]
    print(f"fairlead: {args.fairlead} {version}; {kversion}; namespaces {lab.prefix}-*;"
          f" logs {logdir}", flush=True)
    bench = Bench(args, lab)
    results = {}
    soak = None
    try:
        lab.setup()
        for key in keys:
            runs = 3 if args.quick else (args.runs or SCENARIOS[key][4])
            results[key] = bench.scenario(key, runs)
        if args.soak > 0:
            soak = bench.soak(args.soak)
    except SetupError as e:
        print(f"setup failed: {e}", file=sys.stderr)
        if results:
            report(results, soak)
        return 1
    finally:
        lab.cleanup()
    report(results, soak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
