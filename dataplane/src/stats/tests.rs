use std::sync::Arc;

use http::{Request, StatusCode, header};

use super::*;
use crate::config::BasicAuth;

fn spec(auth: bool) -> FrontendStats {
    FrontendStats {
        prometheus_path: Some("/metrics".into()),
        path: Some("/haproxy/stats".into()),
        refresh_seconds: 10,
        show_node: true,
        auth: auth.then(|| BasicAuth {
            username: "admin".into(),
            password: "s3cret".into(),
        }),
    }
}

fn engine() -> crate::Engine {
    crate::Engine::with_node("node<1>")
}

fn get(path: &str, authorization: Option<&str>) -> Request<()> {
    let mut b = Request::get(path);
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(()).unwrap()
}

#[tokio::test]
async fn paths_forms_and_auth() {
    let engine = engine();
    let source = Arc::new(StatsSource::new(move || engine.snapshot()));
    let service = StatsService::new(&spec(true), &source);
    for (path, served) in [
        ("/haproxy/stats", true),
        ("/haproxy/stats;csv", true),
        ("/haproxy/stats;json", true),
        ("/metrics", true),
        ("/haproxy/stats;xml", false),
        ("/haproxy/statsx", false),
        ("/haproxy", false),
    ] {
        assert_eq!(service.serves(&get(path, None)), served, "{path}");
    }
    // "admin:s3cret", "admin:wrong"
    let good = "Basic YWRtaW46czNjcmV0";
    for bad in [
        None,
        Some("Basic YWRtaW46d3Jvbmc="),
        Some("Bearer x"),
        Some("Basic !!"),
    ] {
        let resp = service.respond(&get("/haproxy/stats", bad));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"fairlead statistics\""
        );
        let metrics = service.respond(&get("/metrics", bad));
        assert_eq!(metrics.status(), StatusCode::UNAUTHORIZED);
    }
    let html = service.respond(&get("/haproxy/stats", Some(good)));
    assert_eq!(html.status(), StatusCode::OK);
    let body = String::from_utf8(html.body().to_vec()).unwrap();
    assert!(body.contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    // The node name is escaped, never raw markup.
    assert!(
        body.contains("node&lt;1&gt;") && !body.contains("node<1>"),
        "{body}"
    );
    let csv = service.respond(&get("/haproxy/stats;csv", Some("basic YWRtaW46czNjcmV0")));
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.body().starts_with(b"# pxname,svname,qcur,"));
    let json = service.respond(&get("/haproxy/stats;json", Some(good)));
    let doc: serde_json::Value = serde_json::from_slice(json.body()).unwrap();
    assert_eq!(doc["node"], "node<1>");
    let post = Request::post("/haproxy/stats")
        .header(header::AUTHORIZATION, good)
        .body(())
        .unwrap();
    assert_eq!(
        service.respond(&post).status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn without_auth_anyone_reads_and_gone_engine_is_503() {
    let engine = engine();
    let source = Arc::new(StatsSource::new(move || engine.snapshot()));
    let service = StatsService::new(&spec(false), &source);
    assert_eq!(
        service.respond(&get("/haproxy/stats", None)).status(),
        StatusCode::OK
    );
    drop(source);
    assert_eq!(
        service.respond(&get("/haproxy/stats", None)).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// HAProxy 2.6's `;csv` header, as `haproxy` 2.6.12 from Debian answers it
/// (up to the per-module counters after `-`).
const HAPROXY_26_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,";

#[test]
fn csv_header_is_haproxys() {
    let text = csv::render(&[]);
    assert_eq!(text.lines().next().unwrap(), HAPROXY_26_HEADER);
}

#[test]
fn csv_quotes_text_with_commas() {
    let mut out = String::new();
    csv::field(&mut out, "a,\"b\"");
    assert_eq!(out, "\"a,\"\"b\"\"\"");
    out.clear();
    csv::field(&mut out, "L7OK");
    assert_eq!(out, "L7OK");
}

#[test]
fn escape_and_durations() {
    assert_eq!(
        html::escape("<a href='x'>&\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    );
    assert_eq!(html::duration(7), "7s");
    assert_eq!(html::duration(250), "4m10s");
    assert_eq!(html::duration(7500), "2h5m");
    assert_eq!(html::duration(3 * 86_400 + 4 * 3600), "3d4h");
}

#[test]
fn the_page_shows_the_virtual_ips_vrrp_state() {
    use fairlead_vrrp::SpeakerStatus;
    use fairlead_vrrp::speaker::TransitionStatus;

    let engine_less = crate::snapshot::Snapshot {
        node: "lb-1".into(),
        process: crate::snapshot::ProcessSnapshot {
            start_unix_ms: 0,
            uptime: std::time::Duration::from_secs(3725),
            current_connections: 0,
            connections_total: 0,
            threads: 1,
            dropped_logs: 0,
        },
        config: crate::snapshot::ConfigSnapshot {
            version: 3,
            applies: 3,
            rejections: 0,
            last_apply_ok: true,
            last_apply_unix_ms: 0,
        },
        frontends: Vec::new(),
        backends: Vec::new(),
        virtual_ips: vec![crate::vrrp::VirtualIpStatus {
            speaker: SpeakerStatus {
                name: "default/vip<1>".into(),
                vrid: 51,
                interface: "eth0".into(),
                state: "Master",
                error: None,
                priority: 50,
                address: None,
                master: Some("192.0.2.10".parse().unwrap()),
                last_transition: Some(TransitionStatus {
                    at_unix_ms: 1,
                    from: "Backup",
                    to: "Master",
                    reason: "no advertisement".into(),
                }),
                became_master_at_unix_ms: None,
                heard_vrids: Vec::new(),
                counters: Default::default(),
            },
            configured_priority: 100,
            tracking_failure: Some("every server down".into()),
        }],
    };
    let page = Page {
        path: "/stats".into(),
        refresh_seconds: 0,
        show_node: false,
    };
    let html = html::render(&page, &engine_less, &[]);
    assert!(!html.contains("http-equiv=\"refresh\""), "no refresh asked");
    assert!(!html.contains("lb-1"), "node hidden without showNode");
    assert!(html.contains("up <b id=\"uptime\">1h2m</b>"), "{html}");
    let row = &html[html.find("data-vip=").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("default/vip&lt;1&gt;"), "{row}");
    assert!(row.contains(">Master<"), "{row}");
    assert!(row.contains("50 of 100 (every server down)"), "{row}");
    assert!(row.contains("192.0.2.10"), "{row}");
    assert!(row.contains("Backup → Master"), "{row}");
    assert!(html.contains("class=\"state-Master\""));
}
