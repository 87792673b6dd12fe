//! Dates for log lines, in UTC (the dataplane knows no time zone).

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A moment broken down: year, month (1-12), day, hour, minute, second, ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
}

/// `unix_ms` in the proleptic Gregorian calendar (days-from-civil inverted,
/// counting 400-year eras from 0000-03-01).
pub fn civil(unix_ms: u64) -> Civil {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        milli: (unix_ms % 1000) as u32,
    }
}

/// HAProxy's log date: `04/Dec/2026:22:10:00.123`.
pub fn clf_date(unix_ms: u64) -> String {
    let c = civil(unix_ms);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02}.{:03}",
        c.day,
        MONTHS[c.month as usize - 1],
        c.year,
        c.hour,
        c.minute,
        c.second,
        c.milli
    )
}

/// RFC 3164's timestamp: `Dec  4 22:10:00`.
pub fn bsd_date(unix_ms: u64) -> String {
    let c = civil(unix_ms);
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[c.month as usize - 1],
        c.day,
        c.hour,
        c.minute,
        c.second
    )
}

/// RFC 3339 in UTC with ms: `2026-12-04T22:10:00.123Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let c = civil(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}
