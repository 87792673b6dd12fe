//! The last check: [`DataplaneConfig::validate`] on the rendered config. Render
//! checks everything it knows first, so this catches only what render missed;
//! objects named in its problems are left out, with the problem as their error.

use fairlead_dataplane::config::DataplaneConfig;

use super::RenderError;

/// `config` if valid; otherwise without the objects the dataplane objects to
/// (and frontends that used a removed backend), each reported in `errors`.
pub(super) fn validated(
    mut config: DataplaneConfig,
    errors: &mut Vec<RenderError>,
) -> DataplaneConfig {
    // Each round removes at least one object, or everything.
    loop {
        let problems = match config.clone().validate() {
            Ok(valid) => return valid,
            Err(e) => e.to_string(),
        };
        let mut removed = false;
        for line in problems.lines() {
            let Some((kind, name, problem)) = parse(line) else {
                continue;
            };
            errors.push(RenderError {
                object: format!("{kind} {name}"),
                field: "spec".into(),
                message: format!("rejected by the dataplane: {problem}"),
            });
            removed |= remove(&mut config, kind, name, errors);
        }
        if !removed {
            for line in problems.lines() {
                errors.push(RenderError {
                    object: "config".into(),
                    field: String::new(),
                    message: format!("rejected by the dataplane: {line}"),
                });
            }
            return DataplaneConfig {
                frontends: Vec::new(),
                backends: Vec::new(),
                ..config
            };
        }
    }
}

/// `frontend default/x: bind: reason` -> `("Frontend", "default/x", "bind: reason")`.
fn parse(line: &str) -> Option<(&'static str, &str, &str)> {
    let (kind, rest) = if let Some(rest) = line.strip_prefix("frontend ") {
        ("Frontend", rest)
    } else {
        ("Backend", line.strip_prefix("backend ")?)
    };
    let (name, problem) = rest.split_once(": ")?;
    Some((kind, name, problem))
}

/// Removes the object; a removed backend takes the frontends using it along.
fn remove(
    config: &mut DataplaneConfig,
    kind: &str,
    name: &str,
    errors: &mut Vec<RenderError>,
) -> bool {
    let before = config.frontends.len() + config.backends.len();
    if kind == "Frontend" {
        config.frontends.retain(|f| f.name != name);
    } else {
        config.backends.retain(|b| b.name != name);
        config.frontends.retain(|f| {
            let uses = f.default_backend.as_deref() == Some(name)
                || f.routes.iter().any(|r| r.backend == name);
            if uses {
                errors.push(RenderError {
                    object: format!("Frontend {}", f.name),
                    field: "spec".into(),
                    message: format!("uses Backend {name}, which the dataplane rejected"),
                });
            }
            !uses
        });
    }
    before != config.frontends.len() + config.backends.len()
}

#[cfg(test)]
mod tests {
    use fairlead_dataplane::config::{Backend, Balance, Frontend, Mode, Server};

    use super::*;

    #[test]
    fn what_the_dataplane_rejects_is_left_out_with_its_users() {
        let mut bad = Backend::new(
            "default/bad",
            Mode::Http,
            Balance::Roundrobin,
            vec![Server::new("s", "10.0.0.1", 80)],
        );
        bad.servers[0].weight = 300;
        let good = Backend::new("default/good", Mode::Http, Balance::Roundrobin, Vec::new());
        let mut uses_bad = Frontend::new("default/a", Mode::Http, "127.0.0.1:1".parse().unwrap());
        uses_bad.default_backend = Some("default/bad".into());
        let mut uses_good = Frontend::new("default/b", Mode::Http, "127.0.0.1:2".parse().unwrap());
        uses_good.default_backend = Some("default/good".into());
        let config = DataplaneConfig {
            frontends: vec![uses_bad, uses_good],
            backends: vec![bad, good],
            ..DataplaneConfig::default()
        };
        let mut errors = Vec::new();
        let valid = validated(config, &mut errors);
        let names: Vec<&str> = valid.frontends.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["default/b"]);
        assert_eq!(valid.backends.len(), 1);
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "Backend default/bad: spec: rejected by the dataplane: servers[0].weight: 300 is out of range (1-256)",
                "Frontend default/a: spec: uses Backend default/bad, which the dataplane rejected",
            ]
        );
    }
}
