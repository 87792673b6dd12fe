use std::path::Path;

use super::*;
use crate::manifest::load_text;

fn snapshot(yaml: &str) -> Snapshot {
    let manifests = load_text(Path::new("test.yaml"), yaml, "default");
    assert!(manifests.errors.is_empty(), "{:?}", manifests.errors);
    manifests.snapshot
}

fn errors(yaml: &str) -> Vec<String> {
    render(&snapshot(yaml))
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

const BACKEND: &str = "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {name: app}
spec:
  servers: [{name: srv1, address: 127.0.0.1, port: 9001}]
";

fn frontend(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: fairlead.io/v1alpha1\nkind: Frontend\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    )
}

#[test]
fn a_valid_pair_renders_with_defaults() {
    let rendered = render(&snapshot(
        &(BACKEND.to_string() + &frontend("web", "  bind: {port: 8080}\n  defaultBackend: app\n")),
    ));
    assert_eq!(rendered.errors, []);
    let f = &rendered.config.frontends[0];
    assert_eq!(f.name, "default/web");
    assert_eq!(f.bind, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(f.default_backend.as_deref(), Some("default/app"));
    assert_eq!(rendered.config.backends[0].connect_timeout_ms, 10_000);
}

#[test]
fn every_frontend_field_is_built() {
    let backend = BACKEND.to_string();
    let spec = "  bind: {port: 8443, virtualIP: vip1}
  tls: {mode: terminate, certificates: [{secret: my-tls}]}
  requestRules: [{setHeader: {name: X-A, value: b}}]
  responseRules: [{removeHeader: {name: Server}}]
  logging: {format: httplog}
  stats: {path: /stats}
  routes: [{match: {sni: a.example.com}, backend: app}]
";
    let vip = "---\napiVersion: fairlead.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: vip1}\nspec: {addresses: [192.0.2.1/24], virtualRouterID: 51}\n";
    let got = errors(&(backend + &frontend("web", spec) + vip));
    assert_eq!(
        got,
        ["Frontend default/web: spec.routes[0].match.sni: sni needs spec.tls.mode passthrough"]
    );
}

#[test]
fn logging_defaults_follow_the_mode_and_the_sinks() {
    let yaml = BACKEND.to_string()
        + &frontend(
            "web",
            "  bind: {port: 8080}\n  defaultBackend: app\n  logging: {dontLogNull: true}\n",
        )
        + &frontend(
            "sys",
            "  bind: {port: 8081}\n  defaultBackend: app\n  logging: {format: json, syslog: {address: '127.0.0.1:514', facility: local2, format: rfc5424}}\n",
        );
    let rendered = render(&snapshot(&yaml));
    assert_eq!(rendered.errors, []);
    let by_name = |n: &str| {
        let f = rendered
            .config
            .frontends
            .iter()
            .find(|f| f.name == n)
            .unwrap();
        f.logging.clone().unwrap()
    };
    let web = by_name("default/web");
    assert_eq!(web.format, config::LogFormat::Httplog);
    assert!(web.dont_log_null && web.stdout && web.syslog.is_none());
    let sys = by_name("default/sys");
    assert_eq!(sys.format, config::LogFormat::Json);
    assert!(!sys.stdout, "syslog set: stdout off unless asked");
    let syslog = sys.syslog.unwrap();
    assert_eq!(
        (
            syslog.address.as_str(),
            syslog.facility.as_str(),
            syslog.tag.as_str()
        ),
        ("127.0.0.1:514", "local2", "fairlead")
    );
    assert_eq!(syslog.format, config::SyslogFormat::Rfc5424);
    // httplog on a tcp frontend is refused.
    let tcp = "  mode: tcp\n  bind: {port: 8082}\n  logging: {format: httplog}\n";
    assert_eq!(
        errors(&(BACKEND.to_string() + &frontend("t", tcp))),
        ["Frontend default/t: spec.logging.format: httplog needs spec.mode http"]
    );
}

fn virtual_ip(spec: &str) -> String {
    format!(
        "---\napiVersion: fairlead.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: vip1}}\nspec:\n{spec}"
    )
}

#[test]
fn a_frontend_bound_to_a_virtual_ip_listens_on_its_first_address() {
    let vip = virtual_ip(
        "  addresses: [192.0.2.100/24, 192.0.2.101/24]\n  virtualRouterID: 51\n  advertInterval: 100ms\n  priorities: [{node: lb-1, priority: 120}]\n  peers: {mode: unicast, addresses: [10.0.0.1, 10.0.0.2]}\n  track: {weight: -30, interfaces: [eth1]}\n  gratuitousArp: {count: 2, interval: 50ms}\n",
    );
    let fe = frontend(
        "web",
        "  bind: {port: 8080, virtualIP: vip1}\n  defaultBackend: app\n",
    );
    let rendered = render(&snapshot(&(BACKEND.to_string() + &fe + &vip)));
    assert_eq!(rendered.errors, []);
    let f = &rendered.config.frontends[0];
    assert_eq!(f.bind, "192.0.2.100:8080".parse().unwrap());
    assert_eq!(f.virtual_ip.as_deref(), Some("default/vip1"));
    let v = &rendered.config.virtual_ips[0];
    assert_eq!(
        (v.name.as_str(), v.vrid, v.version),
        ("default/vip1", 51, 3)
    );
    assert_eq!(v.advert_interval_ms, 100);
    assert_eq!(v.priority_of("lb-1"), Some(120));
    assert_eq!(v.priority_of("lb-2"), Some(100));
    assert_eq!(v.unicast_peers.len(), 2);
    assert_eq!((v.track.weight, v.track.frontends), (-30, true));
    assert_eq!(v.track.interfaces, ["eth1"]);
    assert_eq!((v.garp_count, v.garp_interval_ms), (2, 50));
    assert_eq!(v.addresses[1].prefix_len, 24);
}

#[test]
fn virtual_ip_errors_name_the_field() {
    let cases = [
        (
            "  addresses: [2001:db8::1/64]\n  virtualRouterID: 51\n  version: 2\n",
            "VirtualIP default/vip1: spec.version: VRRP version 2 is IPv4 only; IPv6 addresses need version 3",
        ),
        (
            "  addresses: [2001:db8::1/64]\n  virtualRouterID: 51\n  peers: {mode: unicast, addresses: [192.0.2.7]}\n",
            "VirtualIP default/vip1: spec.peers.addresses[0]: \"192.0.2.7\" is not an IPv6 address, as spec.addresses are",
        ),
        (
            "  addresses: [192.0.2.1/24]\n  virtualRouterID: 51\n  nodeSelector: {lb: \"yes\"}\n",
            "VirtualIP default/vip1: spec.nodeSelector: standalone mode knows no node labels: leave it out, or run the operator",
        ),
        (
            "  addresses: [192.0.2.1/24]\n  virtualRouterID: 51\n  peers: {mode: unicast}\n",
            "VirtualIP default/vip1: spec.peers.addresses: standalone mode does not know the other nodes: list their addresses",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(errors(&virtual_ip(spec)), [expected], "{spec}");
    }
    let fe = frontend(
        "web",
        "  bind: {port: 8080, virtualIP: nope}\n  defaultBackend: app\n",
    );
    assert_eq!(
        errors(&(BACKEND.to_string() + &fe)),
        [
            "Frontend default/web: spec.bind.virtualIP: VirtualIP default/nope does not exist or is invalid"
        ]
    );
}

#[test]
fn the_operator_resolves_node_selectors_and_unicast_peers() {
    let mut snap = snapshot(&virtual_ip(
        "  addresses: [192.0.2.1/24]\n  virtualRouterID: 51\n  nodeSelector: {lb: \"yes\"}\n  peers: {mode: unicast}\n",
    ));
    let node = |name: &str, ip: &str, lb: bool| DataplaneNode {
        name: name.into(),
        addresses: vec![ip.parse().unwrap()],
        labels: lb
            .then(|| ("lb".to_string(), "yes".to_string()))
            .into_iter()
            .collect(),
    };
    snap.nodes = Some(vec![
        node("a", "10.0.0.2", true),
        node("b", "10.0.0.1", true),
        node("c", "10.0.0.3", false),
    ]);
    let rendered = render(&snap);
    assert_eq!(rendered.errors, []);
    let v = &rendered.config.virtual_ips[0];
    assert_eq!(v.priority_of("c"), None);
    assert_eq!(v.priority_of("a"), Some(100));
    let peers: Vec<String> = v.unicast_peers.iter().map(ToString::to_string).collect();
    assert_eq!(peers, ["10.0.0.1", "10.0.0.2"]);
}

#[test]
fn ipv6_unicast_peers_come_from_the_nodes_ipv6_addresses() {
    let mut snap = snapshot(&virtual_ip(
        "  addresses: [fd00::100/64]\n  virtualRouterID: 51\n  peers: {mode: unicast}\n",
    ));
    let node = |name: &str, ips: &[&str]| DataplaneNode {
        name: name.into(),
        addresses: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        labels: BTreeMap::new(),
    };
    snap.nodes = Some(vec![
        node("a", &["10.0.0.1", "fd00::1", "fd00::11"]),
        node("b", &["fd00::2", "10.0.0.2"]),
        node("c", &["10.0.0.3"]),
    ]);
    let rendered = render(&snap);
    assert_eq!(rendered.errors, []);
    let v = &rendered.config.virtual_ips[0];
    assert_eq!(v.addresses[0].address.to_string(), "fd00::100");
    let peers: Vec<String> = v.unicast_peers.iter().map(ToString::to_string).collect();
    assert_eq!(
        peers,
        ["fd00::1", "fd00::2"],
        "the first IPv6 address of each node"
    );

    snap.nodes = Some(vec![node("c", &["10.0.0.3"])]);
    let got: Vec<String> = render(&snap)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "VirtualIP default/vip1: spec.peers.addresses: no dataplane node has an IPv6 address: list the peers' addresses"
        ]
    );
}

#[test]
fn a_vrrp_password_comes_from_its_secret() {
    let vip = virtual_ip(
        "  addresses: [192.0.2.1/24]\n  virtualRouterID: 51\n  version: 2\n  authSecret: vrrp\n",
    );
    let secret = |password: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: vrrp}}\nstringData: {{password: {password}}}\n"
        )
    };
    let rendered = render(&snapshot(&(vip.clone() + &secret("s3cret"))));
    assert_eq!(rendered.errors, []);
    let v = &rendered.config.virtual_ips[0];
    assert_eq!(v.auth_password.as_deref(), Some("s3cret"));
    for (extra, expected) in [
        (String::new(), "Secret default/vrrp does not exist"),
        (
            secret("much-too-long"),
            "Secret default/vrrp: password has 13 bytes; VRRPv2 carries 1-8",
        ),
        (
            secret("\"\""),
            "Secret default/vrrp: password has 0 bytes; VRRPv2 carries 1-8",
        ),
    ] {
        assert_eq!(
            errors(&(vip.clone() + &extra)),
            [format!(
                "VirtualIP default/vip1: spec.authSecret: {expected}"
            )]
        );
    }
}

#[test]
fn a_missing_backend_leaves_the_frontend_out() {
    let rendered = render(&snapshot(&frontend(
        "web",
        "  bind: {port: 8080}\n  defaultBackend: nope\n",
    )));
    assert!(rendered.config.frontends.is_empty());
    let got: Vec<String> = rendered.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "Frontend default/web: spec.defaultBackend: Backend \"nope\" does not exist in namespace default"
        ]
    );
}

#[test]
fn an_invalid_backend_leaves_its_frontends_out_and_others_render() {
    let bad = BACKEND.replace("port: 9001", "port: 70000");
    let good = BACKEND.replace("name: app", "name: other");
    let yaml = format!(
        "{bad}---\n{good}{}{}",
        frontend("web", "  bind: {port: 8080}\n  defaultBackend: app\n"),
        frontend("ok", "  bind: {port: 8081}\n  defaultBackend: other\n")
    );
    let rendered = render(&snapshot(&yaml));
    let got: Vec<String> = rendered.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "Backend default/app: spec.servers[0].port: 70000 is not a port (1-65535)",
            "Frontend default/web: spec.defaultBackend: Backend \"app\" is invalid (see its errors)",
        ]
    );
    let names: Vec<&str> = rendered
        .config
        .frontends
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["default/ok"]);
    assert_eq!(rendered.config.backends.len(), 1);
}

#[test]
fn a_bad_duration_names_its_field() {
    let backend = BACKEND.to_string() + "  timeouts: {connect: 10 seconds}\n";
    let got = errors(&backend);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("Backend default/app: spec.timeouts.connect: "),
        "{got:?}"
    );
    assert!(got[0].contains("10 seconds"), "{got:?}");
}

#[test]
fn modes_must_match_and_routes_need_http() {
    let tcp_backend = BACKEND.to_string() + "  mode: tcp\n";
    let spec = "  mode: tcp\n  bind: {port: 8080}\n  routes: [{match: {pathPrefix: /api}, backend: app}]\n";
    let yaml = tcp_backend
        + &frontend("web", spec)
        + &frontend("h", "  bind: {port: 8081}\n  defaultBackend: app\n");
    assert_eq!(
        errors(&yaml),
        [
            "Frontend default/h: spec.defaultBackend: Backend \"app\" is in tcp mode, this Frontend in http mode",
            "Frontend default/web: spec.routes[0].match: host, pathPrefix and path need spec.mode http",
        ]
    );
}

#[test]
fn conflicting_binds_leave_both_frontends_out() {
    let yaml = BACKEND.to_string()
        + &frontend("a", "  bind: {port: 8080}\n  defaultBackend: app\n")
        + &frontend(
            "b",
            "  bind: {address: 127.0.0.1, port: 8080}\n  defaultBackend: app\n",
        )
        + &frontend(
            "c",
            "  bind: {address: 127.0.0.1, port: 8081}\n  defaultBackend: app\n",
        );
    let rendered = render(&snapshot(&yaml));
    let got: Vec<String> = rendered.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "Frontend default/a: spec.bind: 0.0.0.0:8080 conflicts with 127.0.0.1:8080 of Frontend default/b",
            "Frontend default/b: spec.bind: 127.0.0.1:8080 conflicts with 0.0.0.0:8080 of Frontend default/a",
        ]
    );
    assert_eq!(rendered.config.frontends.len(), 1);
}

#[test]
fn server_and_frontend_limits_are_checked() {
    let backend = BACKEND.replace(
        "port: 9001}]",
        "port: 9001, weight: 0}, {name: srv1, address: 127.0.0.1, port: 9002}]\n  retries: -1",
    );
    let spec = "  bind: {address: localhost, port: 8080}\n  maxConnections: 0\n  routes: [{match: {path: api}, backend: app}]\n";
    let got = errors(&(backend + &frontend("web", spec)));
    assert_eq!(
        got,
        [
            "Backend default/app: spec.servers[0].weight: 0 is out of range (1 to 256)",
            "Backend default/app: spec.servers[1].name: \"srv1\" is used by an earlier server",
            "Backend default/app: spec.retries: -1 is out of range (0 to 10)",
            "Frontend default/web: spec.bind.address: \"localhost\" is not an IP address",
            "Frontend default/web: spec.routes[0].match.path: \"api\" does not start with /",
            "Frontend default/web: spec.maxConnections: 0 is out of range (1 to 2147483647)",
        ]
    );
}

#[test]
fn service_errors_name_the_service_field() {
    let backend = "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {name: app}
spec: {service: {name: web, port: http}}
";
    assert_eq!(
        errors(backend),
        [
            "Backend default/app: spec.service.name: Service \"web\" does not exist in namespace default"
        ]
    );
    let service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{name: metrics, port: 9090}]}\n";
    assert_eq!(
        errors(&(backend.to_string() + service)),
        ["Backend default/app: spec.service.port: Service \"web\" has no port \"http\""]
    );
}

#[test]
fn output_does_not_depend_on_input_order() {
    let a = BACKEND.to_string()
        + &BACKEND
            .replace("name: app", "name: zed")
            .replace("apiVersion", "---\napiVersion");
    let b = BACKEND.replace("name: app", "name: zed") + "---\n" + BACKEND;
    assert_eq!(render(&snapshot(&a)), render(&snapshot(&b)));
}

#[test]
fn stats_page_with_auth_from_a_secret() {
    let spec = "  bind: {port: 8404}
  defaultBackend: app
  stats: {path: /haproxy/stats, refresh: 1500ms, showNode: true, authSecret: stats-auth}
";
    let secret = |data: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: stats-auth}}\nstringData: {data}\n"
        )
    };
    let yaml = BACKEND.to_string()
        + &frontend("stats", spec)
        + &secret("{username: admin, password: s3cret}");
    let rendered = render(&snapshot(&yaml));
    assert_eq!(rendered.errors, []);
    let stats = rendered.config.frontends[0].stats.clone().unwrap();
    assert_eq!(stats.path.as_deref(), Some("/haproxy/stats"));
    assert_eq!(stats.refresh_seconds, 2);
    assert!(stats.show_node);
    let auth = stats.auth.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("admin", "s3cret")
    );

    // Without the Secret, or without a password, the frontend is left out.
    for (extra, expected) in [
        (String::new(), "Secret default/stats-auth does not exist"),
        (
            secret("{username: admin}"),
            "Secret default/stats-auth has no password",
        ),
        (
            secret("{username: 'a:b', password: x}"),
            "Secret default/stats-auth: username holds ':' (basic auth cannot carry it)",
        ),
    ] {
        let got = errors(&(BACKEND.to_string() + &frontend("stats", spec) + &extra));
        assert_eq!(
            got,
            [format!(
                "Frontend default/stats: spec.stats.authSecret: {expected}"
            )]
        );
    }

    // A stats block alone serves the page on /stats, without auth.
    let yaml = BACKEND.to_string() + &frontend("s", "  bind: {port: 8405}\n  stats: {}\n");
    let rendered = render(&snapshot(&yaml));
    assert_eq!(rendered.errors, []);
    let stats = rendered.config.frontends[0].stats.clone().unwrap();
    assert_eq!(stats.path.as_deref(), Some("/stats"));
    assert_eq!(stats.auth, None);
}
