//! Upper bounds of every string and list in the specs, by property name, so
//! that no field takes megabytes: added to the CRD schema as `maxLength` and
//! `maxItems` where a field sets none ([`bound_schema`]), and checked in Rust
//! by [`problems`] over the same table. Bounds that a field's own schema
//! attribute sets (a server name's 63) are kept there and checked by the
//! resource's validation. The bounds also keep the API server's estimated CEL
//! cost of each rule within its budget.
//!
//! | strings | at most |
//! |---|---|
//! | object names and references (`name`, `backend`, `defaultBackend`, `useBackend`, `secret`, `caSecret`, `clientCertSecret`, `authSecret`, `virtualIP`, `service`, `node`) | 253 (DNS subdomain) |
//! | `host`, `sni`, `serverName`, `address` | 253 (DNS name) |
//! | `path`, `pathPrefix`, `pathRegex`, `regex`, `pattern`, `location`, `prefix` | 2,048 |
//! | header `value`, `replacement` | 4,096 |
//! | items of `addresses`, `sourceCidrs` | 64 |
//! | items of `methods` | 32 |
//! | any other string | 1,024 |
//!
//! | lists | at most |
//! |---|---|
//! | `servers` | 10,000 |
//! | any other list | 256 |

use serde_json::Value;

use crate::validate::FieldError;

/// Longest value of a string property named `property`.
pub fn max_length(property: &str) -> usize {
    match property {
        "name" | "backend" | "defaultBackend" | "useBackend" | "secret" | "caSecret"
        | "clientCertSecret" | "authSecret" | "virtualIP" | "service" | "node" => 253,
        "host" | "sni" | "serverName" | "address" => 253,
        "path" | "pathPrefix" | "pathRegex" | "regex" | "pattern" | "location" | "prefix" => 2048,
        "value" | "replacement" => 4096,
        _ => 1024,
    }
}

/// Longest string item of a list property named `property`.
pub fn max_item_length(property: &str) -> usize {
    match property {
        "addresses" | "sourceCidrs" => 64,
        "methods" => 32,
        _ => max_length(property),
    }
}

/// Most items of a list property named `property`.
pub fn max_items(property: &str) -> usize {
    match property {
        "servers" => 10_000,
        _ => 256,
    }
}

/// Adds `maxLength` to every string and `maxItems` to every list of an
/// OpenAPI schema (as JSON) that has none; enums are bounded already.
pub fn bound_schema(schema: &mut Value) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        if let Some(items) = schema.get_mut("additionalProperties") {
            bound_property("", items);
        }
        return;
    };
    for (name, property) in properties.iter_mut() {
        bound_property(name, property);
    }
}

fn bound_property(name: &str, property: &mut Value) {
    let Some(object) = property.as_object_mut() else {
        return;
    };
    match object.get("type").and_then(Value::as_str) {
        Some("string") if !object.contains_key("enum") => {
            object
                .entry("maxLength")
                .or_insert_with(|| max_length(name).into());
        }
        Some("array") => {
            object
                .entry("maxItems")
                .or_insert_with(|| max_items(name).into());
            if let Some(items) = object.get_mut("items").and_then(Value::as_object_mut) {
                if items.get("type").and_then(Value::as_str) == Some("string")
                    && !items.contains_key("enum")
                {
                    items
                        .entry("maxLength")
                        .or_insert_with(|| max_item_length(name).into());
                } else {
                    bound_schema(property.get_mut("items").expect("checked above"));
                }
            }
        }
        Some("object") => bound_schema(property),
        _ => {}
    }
}

/// Every string and list in `value` (a spec as JSON, at path `root`) over
/// its bound.
pub fn problems(value: &Value, root: &str) -> Vec<FieldError> {
    let mut problems = Vec::new();
    walk(value, root, "", &mut problems);
    problems
}

fn walk(value: &Value, path: &str, property: &str, problems: &mut Vec<FieldError>) {
    match value {
        Value::String(s) => {
            let chars = s.chars().count();
            let max = max_length(property);
            if chars > max {
                problems.push(FieldError {
                    field: path.to_string(),
                    message: format!("{chars} characters, at most {max} are allowed"),
                });
            }
        }
        Value::Array(items) => {
            let max = max_items(property);
            if items.len() > max {
                problems.push(FieldError {
                    field: path.to_string(),
                    message: format!("has {} items, at most {max} are allowed", items.len()),
                });
                return;
            }
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                if let Value::String(s) = item {
                    let chars = s.chars().count();
                    let max = max_item_length(property);
                    if chars > max {
                        problems.push(FieldError {
                            field: path,
                            message: format!("{chars} characters, at most {max} are allowed"),
                        });
                    }
                } else {
                    walk(item, &path, property, problems);
                }
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                let path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(field, &path, name, problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_lists_are_bounded_by_property_name() {
        let spec = json!({
            "defaultBackend": "b".repeat(254),
            "routes": [{"match": {"pathPrefix": format!("/{}", "p".repeat(2048))}, "backend": "ok"}],
            "servers": [{"name": "s", "address": "a".repeat(300), "port": 80}],
            "addresses": ["192.0.2.1/24", "x".repeat(65)],
            "other": "o".repeat(1025),
        });
        let lines: Vec<String> = problems(&spec, "spec")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "spec.addresses[1]: 65 characters, at most 64 are allowed",
                "spec.defaultBackend: 254 characters, at most 253 are allowed",
                "spec.other: 1025 characters, at most 1024 are allowed",
                "spec.routes[0].match.pathPrefix: 2049 characters, at most 2048 are allowed",
                "spec.servers[0].address: 300 characters, at most 253 are allowed",
            ]
        );
        let many = json!({"servers": vec![json!({}); 10_001], "methods": vec!["GET"; 257]});
        let lines: Vec<String> = problems(&many, "spec")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "spec.methods: has 257 items, at most 256 are allowed",
                "spec.servers: has 10001 items, at most 10000 are allowed",
            ]
        );
    }

    #[test]
    fn the_schema_gets_the_same_bounds_where_it_has_none() {
        let mut schema = json!({"type": "object", "properties": {
            "host": {"type": "string"},
            "mode": {"type": "string", "enum": ["tcp", "http"]},
            "name": {"type": "string", "maxLength": 63},
            "methods": {"type": "array", "items": {"type": "string"}},
            "servers": {"type": "array", "items": {"type": "object", "properties": {
                "address": {"type": "string"}}}},
            "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
        }});
        bound_schema(&mut schema);
        let p = &schema["properties"];
        assert_eq!(p["host"]["maxLength"], 253);
        assert_eq!(p["mode"].get("maxLength"), None);
        assert_eq!(p["name"]["maxLength"], 63);
        assert_eq!(p["methods"]["maxItems"], 256);
        assert_eq!(p["methods"]["items"]["maxLength"], 32);
        assert_eq!(p["servers"]["maxItems"], 10_000);
        assert_eq!(
            p["servers"]["items"]["properties"]["address"]["maxLength"],
            253
        );
        assert_eq!(p["nodeSelector"]["additionalProperties"]["maxLength"], 1024);
    }
}
