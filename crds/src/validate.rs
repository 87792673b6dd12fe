//! Validation of the specs in Rust, for the operator and the standalone `check`
//! command. It enforces everything the CRD schema and its CEL rules enforce, and
//! what they cannot: durations parse, regexes compile, addresses parse, header
//! names are tokens.
//!
//! Each function returns every problem found, not just the first, as
//! [`FieldError`]s whose `field` is a path from the object root, e.g.
//! `spec.servers[1].port`.

mod address_pool;
mod backend;
mod frontend;
mod rules;
mod virtual_ip;

use std::{fmt, net::IpAddr, time::Duration};

pub use address_pool::validate_address_pool;
pub use backend::validate_backend;
pub use frontend::validate_frontend;
pub use virtual_ip::validate_virtual_ip;

use crate::duration;

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field from the object root, e.g. `spec.servers[1].port`.
    pub field: String,
    /// What is wrong, e.g. `70000 is not a port (1-65535)`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Collects the errors of one spec; the checks shared by the resources.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn port(&mut self, field: &str, port: i32) {
        if !(1..=65535).contains(&port) {
            self.push(field, format!("{port} is not a port (1-65535)"));
        }
    }

    fn range(&mut self, field: &str, value: Option<i32>, min: i32, max: i32) {
        if let Some(value) = value
            && !(min..=max).contains(&value)
        {
            self.push(field, format!("{value} is out of range ({min} to {max})"));
        }
    }

    fn max_items(&mut self, field: &str, len: usize, max: usize) {
        if len > max {
            self.push(field, format!("has {len} items, at most {max} are allowed"));
        }
    }

    fn not_empty(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty");
        }
    }

    fn duration(&mut self, field: &str, value: Option<&String>) -> Option<Duration> {
        match duration::parse(value?) {
            Ok(d) => Some(d),
            Err(err) => {
                self.push(field, err.to_string());
                None
            }
        }
    }

    fn regex(&mut self, field: &str, pattern: &str) {
        if let Err(err) = regex::Regex::new(pattern) {
            self.push(field, format!("{pattern:?} is not a valid regex: {err}"));
        }
    }

    fn ip(&mut self, field: &str, address: &str) {
        if address.parse::<IpAddr>().is_err() {
            self.push(field, format!("{address:?} is not an IP address"));
        }
    }

    fn header_name(&mut self, field: &str, name: &str) {
        if !is_token(name) {
            self.push(field, format!("{name:?} is not a valid header name"));
        }
    }

    fn header_value(&mut self, field: &str, value: &str) {
        if value.contains(['\r', '\n', '\0']) {
            self.push(field, "must not contain CR, LF or NUL");
        }
    }

    fn path(&mut self, field: &str, path: Option<&String>) {
        if let Some(path) = path
            && !path.starts_with('/')
        {
            self.push(field, format!("{path:?} does not start with /"));
        }
    }

    /// "set exactly one ... of a, b, c (N set)" unless exactly one option is set;
    /// `what` is e.g. `one action of`.
    fn exactly_one(&mut self, field: &str, what: &str, options: &[(&str, bool)]) {
        let set = options.iter().filter(|(_, set)| *set).count();
        if set != 1 {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            let names = names.join(", ");
            self.push(field, format!("set exactly {what} {names} ({set} set)"));
        }
    }

    fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

/// An HTTP token (RFC 9110 section 5.6.2), as header names and methods are.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The strings and lists of `spec` over their [`crate::bounds`]; when there
/// are any, a validation reports only these (other messages would quote the
/// oversized values).
fn out_of_bounds<T: serde::Serialize>(spec: &T) -> Option<Vec<FieldError>> {
    let value = serde_json::to_value(spec).ok()?;
    Some(crate::bounds::problems(&value, "spec")).filter(|p| !p.is_empty())
}

/// The problems as `field: message` lines, for the tests.
#[cfg(test)]
fn messages(problems: &[FieldError]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_displays_field_then_message() {
        let err = FieldError {
            field: "spec.servers[1].port".into(),
            message: "70000 is not a port (1-65535)".into(),
        };
        assert_eq!(
            err.to_string(),
            "spec.servers[1].port: 70000 is not a port (1-65535)"
        );
    }

    #[test]
    fn tokens() {
        assert!(is_token("X-Forwarded-For"));
        assert!(is_token("GET"));
        assert!(!is_token(""));
        assert!(!is_token("Bad Header"));
        assert!(!is_token("a:b"));
    }
}
