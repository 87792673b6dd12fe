//! The `;json` form: one object with the node, the process, the config, one
//! object per row keyed by HAProxy's CSV column names (fields without a
//! value left out; numbers as numbers), and the virtual IPs' VRRP status.
//!
//! ```json
//! {"node": "lb-1", "uptimeSeconds": 12, "process": {...}, "config": {...},
//!  "rows": [{"pxname": "default/web", "svname": "FRONTEND", "scur": 1, ...}],
//!  "virtualIps": [{"name": "default/vip1", "state": "Master", ...}]}
//! ```

use serde_json::{Map, Value as Json, json};

use super::rows::{COLUMNS, Row, Value};
use crate::snapshot::Snapshot;

pub fn render(snapshot: &Snapshot, rows: &[Row]) -> String {
    let rows: Vec<Json> = rows.iter().map(row).collect();
    let p = &snapshot.process;
    let c = &snapshot.config;
    let doc = json!({
        "node": snapshot.node,
        "uptimeSeconds": p.uptime.as_secs(),
        "process": {
            "startUnixMs": p.start_unix_ms,
            "currentConnections": p.current_connections,
            "connectionsTotal": p.connections_total,
            "threads": p.threads,
        },
        "config": {
            "version": c.version,
            "applies": c.applies,
            "rejections": c.rejections,
            "lastApplyOk": c.last_apply_ok,
            "lastApplyUnixMs": c.last_apply_unix_ms,
        },
        "rows": rows,
        "virtualIps": snapshot.virtual_ips,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

fn row(r: &Row) -> Json {
    let mut obj = Map::new();
    for column in COLUMNS {
        if let Some(v) = r.get(column) {
            let v = match v {
                Value::Num(n) => Json::from(*n),
                Value::Text(t) => Json::from(t.as_str()),
            };
            obj.insert(column.to_string(), v);
        }
    }
    Json::Object(obj)
}
