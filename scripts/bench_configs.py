"""Configuration files for scripts/bench.py: the nginx backend, and HAProxy,
nginx and fairlead as proxies in front of it, each built from the same
description of which listeners a run needs (pure text, no processes here).

`Listeners` names the ports of one proxy instance; a port left at None is not
configured. HTTP listeners proxy to the nginx backend, TCP ones to iperf3.
"""

import os
from dataclasses import dataclass

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

BACKEND_NGINX = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
{temp}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{ default_type text/plain; return 200 "ok"; }}
        location = /16k {{ root {dir}/www; }}
    }}
}}
"""

RSYSLOG_CONF = """
global(workDirectory="{dir}/rsyslog")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{port}")
local2.* {dir}/haproxy.log
"""


@dataclass
class Listeners:
    """Ports of one proxy instance; None = not configured."""
    http: int
    tls: int | None = None
    log: int | None = None
    tcp: int | None = None
    tcp_splice: int | None = None  # HAProxy only: `option splice-auto`
    threads: int = 1
    maxconn: int = 4096


def nginx_has_stream():
    return os.path.exists(NGINX_STREAM_MODULE)


def temp_paths(dir):
    return "\n".join(f"    {kind}_temp_path {dir}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def backend_nginx(dir, port):
    return BACKEND_NGINX.format(dir=dir, port=port, temp=temp_paths(dir))


def haproxy(ls, backend, iperf, syslog, pem):
    """haproxy.cfg: HTTP frontends to the nginx backend, TCP ones to iperf3."""
    out = [f"global\n    nbthread {ls.threads}\n    maxconn {ls.maxconn}",
           "defaults\n    mode http\n    timeout connect 10s\n    timeout client 1m\n"
           "    timeout server 1m\n    option forwardfor",
           f"frontend http-in\n    bind 127.0.0.1:{ls.http}\n    default_backend app"]
    if ls.tls:
        out.append(f"frontend https-in\n    bind 127.0.0.1:{ls.tls} ssl crt {pem} alpn http/1.1\n"
                   "    default_backend app")
    if ls.log:
        out.append(f"frontend http-log\n    bind 127.0.0.1:{ls.log}\n    log 127.0.0.1:{syslog} local2\n"
                   "    option httplog\n    default_backend app")
    out.append(f"backend app\n    balance roundrobin\n    server nginx 127.0.0.1:{backend} maxconn 0")
    if ls.tcp or ls.tcp_splice:
        out.append("defaults\n    mode tcp\n    timeout connect 10s\n    timeout client 1m\n    timeout server 1m")
    if ls.tcp:
        out.append(f"frontend tcp-in\n    bind 127.0.0.1:{ls.tcp}\n    default_backend tcp-app")
        out.append(f"backend tcp-app\n    server iperf 127.0.0.1:{iperf}")
    if ls.tcp_splice:
        out.append(f"frontend tcp-splice\n    bind 127.0.0.1:{ls.tcp_splice}\n    option splice-auto\n"
                   "    default_backend tcp-app-splice")
        out.append(f"backend tcp-app-splice\n    option splice-auto\n    server iperf 127.0.0.1:{iperf}")
    return "\n".join(out) + "\n"


def nginx_proxy(dir, ls, backend, iperf, syslog, crt, key):
    """nginx as a reverse proxy: upstream keepalive pool, 1.1 to the backend."""
    stream = bool(ls.tcp) and nginx_has_stream()
    location = ("        location / {\n            proxy_pass http://app;\n            proxy_http_version 1.1;\n"
                "            proxy_set_header Connection \"\";\n"
                "            proxy_set_header X-Forwarded-For $remote_addr;\n        }")
    out = [f"load_module {NGINX_STREAM_MODULE};" if stream else "",
           f"worker_processes {ls.threads};\ndaemon off;",
           f"pid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;",
           f"events {{ worker_connections {2 * ls.maxconn + 100}; }}",
           "http {\n    access_log off;\n    keepalive_requests 1000000;\n" + temp_paths(dir),
           f"    upstream app {{\n        server 127.0.0.1:{backend};\n        keepalive 64;\n"
           "        keepalive_requests 1000000;\n    }",
           f"    server {{\n        listen 127.0.0.1:{ls.http} backlog=4096;\n{location}\n    }}"]
    if ls.tls:
        out.append(f"    server {{\n        listen 127.0.0.1:{ls.tls} ssl backlog=4096;\n"
                   f"        ssl_certificate {crt};\n        ssl_certificate_key {key};\n"
                   f"{location}\n    }}")
    if ls.log:
        out.append(f"    server {{\n        listen 127.0.0.1:{ls.log} backlog=4096;\n"
                   f"        access_log syslog:server=127.0.0.1:{syslog},facility=local2 combined;\n"
                   f"{location}\n    }}")
    out.append("}")
    if stream:
        out.append(f"stream {{\n    server {{\n        listen 127.0.0.1:{ls.tcp};\n"
                   f"        proxy_pass 127.0.0.1:{iperf};\n    }}\n}}")
    return "\n".join(out) + "\n"


def fairlead(ls, backend, iperf, syslog):
    """Manifests for `fairlead run -f` (the certificate comes from site.pem)."""
    def frontend(name, port, extra=""):
        return (f"apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {{name: {name}}}\nspec:\n"
                f"  mode: http\n  bind: {{address: 127.0.0.1, port: {port}}}\n  defaultBackend: app\n"
                f"  maxConnections: {ls.maxconn}\n{extra}")
    out = [frontend("http-in", ls.http),
           "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {name: app}\nspec:\n  mode: http\n"
           f"  balance: roundrobin\n  servers:\n    - {{name: nginx, address: 127.0.0.1, port: {backend}}}\n"]
    if ls.tls:
        out.append(frontend("https-in", ls.tls, "  tls: {certificates: [{secret: site}], alpn: [http/1.1]}\n"))
    if ls.log:
        out.append(frontend("http-log", ls.log, "  logging: {format: httplog, syslog: "
                                                f"{{address: \"127.0.0.1:{syslog}\", facility: local2}}}}\n"))
    if ls.tcp:
        out.append("apiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {name: tcp-in}\nspec:\n"
                   f"  mode: tcp\n  bind: {{address: 127.0.0.1, port: {ls.tcp}}}\n  defaultBackend: tcp-app\n")
        out.append("apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {name: tcp-app}\nspec:\n"
                   f"  mode: tcp\n  servers:\n    - {{name: iperf, address: 127.0.0.1, port: {iperf}}}\n")
    return "---\n".join(out)
