//! Golden files: each `golden/<case>.yaml` (and each example in
//! `deploy/examples/`) renders to exactly `golden/<case>.json`.
//! `UPDATE_GOLDEN=1 cargo test` rewrites the expected files.

use std::path::{Path, PathBuf};

use fairlead_operator::manifest;
use fairlead_operator::render::render;

/// The examples, as golden cases: (input, case name).
const EXAMPLES: [(&str, &str); 2] = [("http-in.yaml", "tutorial"), ("tcp.yaml", "tcp")];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn cases() -> Vec<(PathBuf, String)> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut cases: Vec<(PathBuf, String)> = EXAMPLES
        .iter()
        .map(|(file, case)| (examples.join(file), case.to_string()))
        .collect();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let case = path.file_stem().unwrap().to_string_lossy().into_owned();
            cases.push((path, case));
        }
    }
    cases.sort_by(|a, b| a.1.cmp(&b.1));
    cases
}

#[test]
fn every_case_renders_to_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for (input, case) in cases() {
        let manifests = manifest::load(std::slice::from_ref(&input), "default");
        assert!(
            manifests.errors.is_empty(),
            "{case}: {:?}",
            manifests.errors
        );
        let rendered = render(&manifests.snapshot);
        assert!(rendered.errors.is_empty(), "{case}: {:?}", rendered.errors);
        let json = rendered.config.to_json_pretty() + "\n";
        let expected_path = golden_dir().join(format!("{case}.json"));
        if update {
            std::fs::write(&expected_path, &json).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if json != expected {
            failures.push(format!(
                "{case}: rendered config differs from {}:\n{json}",
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 rewrites)",
        failures.join("\n")
    );
}

#[test]
fn every_balance_algorithm_has_a_case() {
    let golden = std::fs::read_to_string(golden_dir().join("balance.json")).unwrap();
    for balance in [
        "roundrobin",
        "leastconn",
        "source",
        "uri",
        "random",
        "first",
    ] {
        assert!(
            golden.contains(&format!("\"balance\": \"{balance}\"")),
            "{balance}"
        );
    }
}
