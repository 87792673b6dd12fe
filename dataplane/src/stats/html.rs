//! The HTML stats page: a summary a person reads at a glance (each
//! backend's servers as coloured chips, the node's virtual IPs), then one
//! table per frontend and per backend with HAProxy's columns and row
//! colours. Server-rendered, one self-contained document: inline CSS, no
//! script, no external asset; every text from the config or the network is
//! escaped. A phone scrolls the wide tables sideways, names stay in view.

use std::fmt::Write as _;

use super::Page;
use super::rows::{Kind, Row};
use crate::snapshot::Snapshot;
use crate::vrrp::VirtualIpStatus;

/// `&`, `<`, `>`, `"` and `'` as character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `3d4h`, `2h5m`, `4m10s`, `7s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, ..) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// `812 B`, `3.4 KiB`, `1.2 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2430;--muted:#5d6878;--line:#dde1e7;--head:#eef0f4;
--up:#c0ffc0;--going-down:#ffffa0;--down:#ff9090;--going-up:#ffd020;--b-up:#b0d0ff;
--b-going-down:#c060ff;--b-going-up:#ff80ff;--none:#e0e0e0;--proxy:#e8e8d0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{padding:14px 18px;background:#1f2a44;color:#fff}
header h1{margin:0;font-size:20px;font-weight:600}
header .meta{margin:6px 0 0;display:flex;flex-wrap:wrap;gap:6px 18px;color:#c9d3e6;font-size:13px}
header .meta b{color:#fff;font-weight:600}
main{padding:14px 18px;max-width:1800px}
h2{font-size:16px;margin:22px 0 8px}
h3{font-size:14px;margin:0 0 6px;display:flex;justify-content:space-between;gap:8px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .count{color:var(--muted);font-weight:400;white-space:nowrap}
.chips{display:flex;flex-wrap:wrap;gap:5px}
.chip{border-radius:999px;padding:2px 9px;font-size:12.5px;border:1px solid rgba(0,0,0,.12);white-space:nowrap}
.chip b{font-weight:600}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:14px}
table{border-collapse:collapse;width:100%;font-size:12px;font-variant-numeric:tabular-nums}
th,td{padding:4px 5px;border-bottom:1px solid var(--line);white-space:nowrap;text-align:right}
.st{display:none}
thead th{background:var(--head);font-weight:600;color:#33404f}
thead tr.groups th{text-align:center;border-left:1px solid var(--line)}
th.name,td.name{text-align:left;position:sticky;left:0;z-index:1;min-width:8em;max-width:20em;overflow:hidden;text-overflow:ellipsis}
td.name{background:inherit;font-weight:600}
thead th.name{background:var(--head)}
td.g,th.g{border-left:1px solid var(--line)}
td.status{text-align:left;font-weight:600}
td.check{text-align:left}
tr.frontend,tr.backend{background:var(--proxy)}
tr.backend td{font-weight:600;border-top:2px solid #c8c8b0}
.active_up{background:var(--up)}.active_going_down{background:var(--going-down)}
.active_down,.backup_down{background:var(--down)}.active_going_up{background:var(--going-up)}
.active_no_check,.backup_no_check{background:var(--none)}.backup_up{background:var(--b-up)}
.backup_going_down{background:var(--b-going-down)}.backup_going_up{background:var(--b-going-up)}
.state-Master{background:var(--up)}.state-Backup{background:var(--b-up)}
.state-Fault,.state-Initialize{background:var(--down)}
.legend{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0 18px;color:var(--muted);font-size:12.5px}
.legend span{padding:2px 8px;border-radius:4px;border:1px solid rgba(0,0,0,.1);color:var(--ink)}
.muted{color:var(--muted)}
footer{padding:0 18px 20px;color:var(--muted);font-size:12.5px}
a{color:#2456b3}
@media (max-width:640px){main{padding:10px}header{padding:12px}table{font-size:12px}
th.name,td.name{min-width:7em;max-width:12em}.cards{grid-template-columns:1fr}
.x{display:none}.st{display:inline;font-weight:400}}
"#;

/// The page for `snapshot` and its `rows`.
pub fn render(page: &Page, snapshot: &Snapshot, rows: &[Row]) -> String {
    let mut out = String::with_capacity(8192 + rows.len() * 1200);
    let node = escape(&snapshot.node);
    out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    if page.refresh_seconds > 0 {
        let _ = write!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            page.refresh_seconds
        );
    }
    let title = if page.show_node {
        format!("fairlead statistics on {node}")
    } else {
        "fairlead statistics".to_string()
    };
    let _ = write!(
        out,
        "<title>{title}</title><style>{STYLE}</style></head><body>"
    );
    header(&mut out, page, snapshot, &title);
    out.push_str("<main>");
    summary(&mut out, snapshot, rows);
    out.push_str("<h2>Frontends</h2>");
    for row in rows.iter().filter(|r| r.kind == Kind::Frontend) {
        table(
            &mut out,
            &row.text("pxname"),
            "frontend",
            std::slice::from_ref(row),
        );
    }
    out.push_str("<h2>Backends</h2>");
    let mut start = 0;
    for (i, row) in rows.iter().enumerate() {
        match row.kind {
            Kind::Frontend => start = i + 1,
            Kind::Server => {}
            Kind::Backend => {
                table(&mut out, &row.text("pxname"), "backend", &rows[start..=i]);
                start = i + 1;
            }
        }
    }
    legend(&mut out);
    out.push_str("</main>");
    let path = escape(&page.path);
    let _ = writeln!(
        out,
        "<footer>Also as <a href=\"{path};csv\">CSV</a> (HAProxy's columns) and \
         <a href=\"{path};json\">JSON</a>. Session rates are per second, measured \
         between two loads of this page.</footer></body></html>"
    );
    out
}

fn header(out: &mut String, page: &Page, s: &Snapshot, title: &str) {
    let c = &s.config;
    let _ = write!(out, "<header><h1>{title}</h1><div class=\"meta\">");
    if page.show_node {
        let _ = write!(
            out,
            "<span>node <b id=\"node\">{}</b></span>",
            escape(&s.node)
        );
    }
    let _ = write!(
        out,
        "<span>config <b id=\"config-version\">v{}</b>{}</span>",
        c.version,
        if c.last_apply_ok {
            ""
        } else {
            " <b>(last apply rejected)</b>"
        }
    );
    let _ = write!(
        out,
        "<span>up <b id=\"uptime\">{}</b></span><span><b>{}</b> connections now</span>\
         <span><b>{}</b> since start</span>",
        duration(s.process.uptime.as_secs()),
        s.process.current_connections,
        s.process.connections_total,
    );
    if page.refresh_seconds > 0 {
        let _ = write!(out, "<span>refresh every {}s</span>", page.refresh_seconds);
    }
    out.push_str("</div></header>");
}

/// Cards: each backend's servers as chips, and the virtual IPs.
fn summary(out: &mut String, s: &Snapshot, rows: &[Row]) {
    out.push_str("<section class=\"cards\" id=\"summary\">");
    let mut servers: Vec<&Row> = Vec::new();
    for row in rows {
        match row.kind {
            Kind::Frontend => {}
            Kind::Server => servers.push(row),
            Kind::Backend => {
                let up = servers
                    .iter()
                    .filter(|r| r.text("status") != "DOWN")
                    .count();
                let _ = write!(
                    out,
                    "<div class=\"card\"><h3><span>{}</span><span class=\"count\">{up}/{} up</span></h3><div class=\"chips\">",
                    escape(&row.text("pxname")),
                    servers.len()
                );
                for server in servers.drain(..) {
                    let _ = write!(
                        out,
                        "<span class=\"chip {}\"><b>{}</b> {}</span>",
                        server.class(),
                        escape(&server.text("svname")),
                        escape(&server.text("status")),
                    );
                }
                out.push_str("</div></div>");
            }
        }
    }
    if !s.virtual_ips.is_empty() {
        out.push_str(
            "<div class=\"card\" id=\"vrrp\"><h3><span>Virtual IPs (VRRP)</span></h3><div class=\"chips\">",
        );
        for v in &s.virtual_ips {
            vip_chip(out, v);
        }
        out.push_str("</div></div>");
    }
    out.push_str("</section>");
    if !s.virtual_ips.is_empty() {
        vip_table(out, &s.virtual_ips);
    }
}

fn vip_chip(out: &mut String, v: &VirtualIpStatus) {
    let sp = &v.speaker;
    let _ = write!(
        out,
        "<span class=\"chip state-{}\"><b>{}</b> {} · prio {}</span>",
        sp.state,
        escape(&sp.name),
        sp.state,
        sp.priority
    );
}

fn vip_table(out: &mut String, vips: &[VirtualIpStatus]) {
    out.push_str(
        "<h2>Virtual IPs</h2><div class=\"scroll\"><table id=\"virtual-ips\"><thead><tr>\
         <th class=\"name\">Virtual IP</th><th>VRID</th><th>Interface</th><th>State</th>\
         <th>Priority</th><th>Master</th><th>Last change</th></tr></thead><tbody>",
    );
    let now_ms = (crate::snapshot::now_seconds() * 1000.0) as u64;
    for v in vips {
        let sp = &v.speaker;
        let master = sp
            .master
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        let change = match &sp.last_transition {
            Some(t) => format!(
                "{} → {} {} ago: {}",
                t.from,
                t.to,
                duration(now_ms.saturating_sub(t.at_unix_ms) / 1000),
                t.reason
            ),
            None => "-".into(),
        };
        let mut priority = format!("{} of {}", sp.priority, v.configured_priority);
        if let Some(why) = &v.tracking_failure {
            priority.push_str(&format!(" ({why})"));
        }
        let mut state = sp.state.to_string();
        if let Some(e) = &sp.error {
            state.push_str(&format!(": {e}"));
        }
        let _ = write!(
            out,
            "<tr class=\"state-{}\" data-vip=\"{}\"><td class=\"name\">{}</td><td>{}</td>\
             <td>{}</td><td class=\"status\">{}</td><td>{}</td><td>{}</td><td class=\"check\">{}</td></tr>",
            sp.state,
            escape(&sp.name),
            escape(&sp.name),
            sp.vrid,
            escape(&sp.interface),
            escape(&state),
            escape(&priority),
            escape(&master),
            escape(&change),
        );
    }
    out.push_str("</tbody></table></div>");
}

/// Column groups as HAProxy's page has them; `true`: hidden on a phone.
const GROUPS: [(&str, bool, &[&str]); 8] = [
    ("Queue", true, &["Cur", "Max", "Limit"]),
    ("Session rate", true, &["Cur", "Max", "Limit"]),
    (
        "Sessions",
        false,
        &["Cur", "Max", "Limit", "Total", "LbTot", "Last"],
    ),
    ("Bytes", false, &["In", "Out"]),
    ("Denied", true, &["Req", "Resp"]),
    ("Errors", false, &["Req", "Conn", "Resp"]),
    ("Warnings", true, &["Retr", "Redis"]),
    (
        "Server",
        false,
        &[
            "Status", "LastChk", "Wght", "Act", "Bck", "Chk", "Dwn", "Dwntme",
        ],
    ),
];

/// The class of the `i`th cell of a group: `g` starts a group, `x` hides.
fn cell_class(i: usize, hidden: bool) -> &'static str {
    match (i == 0, hidden) {
        (true, true) => "g x",
        (true, false) => "g",
        (false, true) => "x",
        (false, false) => "",
    }
}

fn table(out: &mut String, name: &str, kind: &str, rows: &[Row]) {
    let name = escape(name);
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"proxy\" data-proxy=\"{name}\" data-kind=\"{kind}\">\
         <thead><tr class=\"groups\"><th class=\"name\" rowspan=\"2\">{name}</th>"
    );
    for (group, hidden, columns) in GROUPS {
        let class = cell_class(0, hidden);
        let _ = write!(
            out,
            "<th class=\"{class}\" colspan=\"{}\">{group}</th>",
            columns.len()
        );
    }
    out.push_str("</tr><tr>");
    for (_, hidden, columns) in GROUPS {
        for (i, c) in columns.iter().enumerate() {
            let _ = write!(out, "<th class=\"{}\">{c}</th>", cell_class(i, hidden));
        }
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        table_row(out, row);
    }
    out.push_str("</tbody></table></div>");
}

/// One table cell: its text (escaped), an extra class, a tooltip.
struct Cell {
    text: String,
    class: &'static str,
    title: String,
}

fn cell(text: String) -> Cell {
    Cell {
        text,
        class: "",
        title: String::new(),
    }
}

fn table_row(out: &mut String, r: &Row) {
    let t = |c: &str| escape(&r.text(c));
    let server = r.kind == Kind::Server;
    let label = match r.kind {
        Kind::Frontend => "Frontend".to_string(),
        Kind::Backend => "Backend".to_string(),
        Kind::Server => t("svname"),
    };
    let _ = write!(
        out,
        "<tr class=\"{}\" data-server=\"{}\" data-status=\"{}\"><td class=\"name\" title=\"{}\">\
         {label}<span class=\"st\"> {}</span></td>",
        r.class(),
        if server { t("svname") } else { String::new() },
        t("status"),
        if server { t("addr") } else { t("pxname") },
        t("status"),
    );
    let num = |c: &str| cell(t(c));
    let last = match r.text("lastsess").as_str() {
        "" => String::new(),
        "-1" => "never".into(),
        s => s.parse().map(duration).unwrap_or_default(),
    };
    // Bytes readable, with the exact count on hover.
    let size = |c: &str| Cell {
        text: r.text(c).parse().map(bytes).unwrap_or_default(),
        class: "",
        title: t(c),
    };
    let mut status = t("status");
    if let Ok(since) = r.text("lastchg").parse::<u64>() {
        status = format!("{} {status}", duration(since));
    }
    let check = match r.text("check_status").as_str() {
        "" => String::new(),
        s => {
            let code = r.text("check_code");
            let code = if code.is_empty() {
                String::new()
            } else {
                format!("/{code}")
            };
            format!("{}{code} in {}ms", escape(s), t("check_duration"))
        }
    };
    let flag = |c: &str| match (server, r.text(c).as_str()) {
        (true, "1") => cell("Y".into()),
        (true, _) => cell("-".into()),
        (false, _) => num(c),
    };
    let cells: [Vec<Cell>; 8] = [
        vec![num("qcur"), num("qmax"), num("qlimit")],
        vec![num("rate"), num("rate_max"), num("rate_lim")],
        vec![
            num("scur"),
            num("smax"),
            num("slim"),
            num("stot"),
            num("lbtot"),
            cell(last),
        ],
        vec![size("bin"), size("bout")],
        vec![num("dreq"), num("dresp")],
        vec![num("ereq"), num("econ"), num("eresp")],
        vec![num("wretr"), num("wredis")],
        vec![
            Cell {
                text: status,
                class: "status",
                title: String::new(),
            },
            Cell {
                text: check,
                class: "check",
                title: t("check_desc"),
            },
            num("weight"),
            flag("act"),
            flag("bck"),
            num("chkfail"),
            num("chkdown"),
            cell(r.text("downtime").parse().map(duration).unwrap_or_default()),
        ],
    ];
    for ((_, hidden, _), group) in GROUPS.iter().zip(cells) {
        for (i, c) in group.into_iter().enumerate() {
            let class = [cell_class(i, *hidden), c.class]
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            out.push_str("<td");
            if !class.is_empty() {
                let _ = write!(out, " class=\"{class}\"");
            }
            if !c.title.is_empty() {
                let _ = write!(out, " title=\"{}\"", c.title);
            }
            let _ = write!(out, ">{}</td>", c.text);
        }
    }
    out.push_str("</tr>");
}

fn legend(out: &mut String) {
    out.push_str("<div class=\"legend\" id=\"legend\">");
    for (class, text) in [
        ("active_up", "active UP"),
        ("active_going_down", "active UP, going down"),
        ("active_down", "active DOWN"),
        ("active_going_up", "active DOWN, going up"),
        ("backup_up", "backup UP"),
        ("backup_going_down", "backup UP, going down"),
        ("backup_down", "backup DOWN"),
        ("backup_going_up", "backup DOWN, going up"),
        ("active_no_check", "not checked"),
    ] {
        let _ = write!(out, "<span class=\"{class}\">{text}</span>");
    }
    out.push_str("</div>");
}
