//! The `;csv` form: HAProxy's header line and one line per row, each field
//! followed by a comma, as HAProxy writes them. A text field holding a
//! comma, a quote or a line break is quoted (RFC 4180).

use super::rows::{COLUMNS, Row};

pub fn render(rows: &[Row]) -> String {
    let mut out = String::with_capacity(512 * (rows.len() + 1));
    out.push_str("# ");
    for column in COLUMNS {
        out.push_str(column);
        out.push(',');
    }
    out.push('\n');
    for row in rows {
        for column in COLUMNS {
            field(&mut out, &row.text(column));
            out.push(',');
        }
        out.push('\n');
    }
    out
}

pub(super) fn field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}
