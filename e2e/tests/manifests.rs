//! The shipped manifests, checked offline (no cluster, no network): the chart's
//! CRDs are deploy/'s, deploy/ is what scripts/render-deploy.sh renders from the
//! chart, `helm lint --strict` passes, kubeconform -strict (schemas written by
//! scripts/kube-schemas.py, read from disk only) accepts deploy/, the examples
//! and the chart rendered with default and non-default values and rejects
//! unknown fields, and the chart's values.schema.json rejects bad values.
//! helm and kubeconform come from e2e/go/ (scripts/build-e2e-bins.sh).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use fairlead_e2e::{K8S_VERSION, bin_dir, repo_path};

/// Longest any one command may run (`timeout` kills it after that).
const COMMAND_TIMEOUT_SECS: &str = "300";
const CHART: &str = "charts/fairlead";
const NON_DEFAULT_VALUES: &str = "charts/fairlead/ci/non-default-values.yaml";
/// What `kubectl apply -k deploy/` applies, and the examples.
const DEPLOY: [&str; 7] = [
    "deploy/crds/fairlead.io_crds.yaml",
    "deploy/namespace.yaml",
    "deploy/rbac.yaml",
    "deploy/operator.yaml",
    "deploy/dataplane.yaml",
    "deploy/examples",
    "deploy/vrrp-example",
];

/// A binary built by scripts/build-e2e-bins.sh.
fn tool(name: &str) -> PathBuf {
    let path = bin_dir().expect("the e2e binary directory").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-e2e-bins.sh",
        path.display()
    );
    path
}

/// Runs `program args` from the repository root with `stdin`, killed after
/// COMMAND_TIMEOUT_SECS; returns its output and stdout + stderr as text.
fn run(program: &Path, args: &[&str], env: &[(&str, &Path)], stdin: &str) -> (Output, String) {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", COMMAND_TIMEOUT_SECS])
        .arg(program)
        .args(args)
        .current_dir(repo_path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.as_bytes().to_vec();
    let feeder = std::thread::spawn(move || pipe.write_all(&input));
    let out = child.wait_with_output().expect("waiting for the command");
    let _ = feeder.join();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The schema directory, written (or found up to date) by scripts/kube-schemas.py.
fn schemas() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = repo_path("scripts/kube-schemas.py");
        let (out, text) = run(Path::new("python3"), &[&script.to_string_lossy()], &[], "");
        assert!(
            out.status.success(),
            "scripts/kube-schemas.py failed:\n{text}"
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(stdout.lines().last().expect("the schema directory").trim())
    })
}

/// kubeconform -strict -summary over `files` (stdin when empty), schemas only
/// from the local directory.
fn kubeconform(files: &[&str], stdin: &str) -> (bool, String) {
    let location = schemas().to_string_lossy().into_owned();
    let version = K8S_VERSION.trim_start_matches('v');
    let mut args = vec![
        "-strict",
        "-summary",
        "-schema-location",
        &location,
        "-kubernetes-version",
        version,
    ];
    args.extend(files);
    let (out, text) = run(&tool("kubeconform"), &args, &[], stdin);
    (out.status.success(), text)
}

/// The counts of kubeconform's summary line: (valid, invalid, errors, skipped).
fn summary(text: &str) -> [usize; 4] {
    let line = text
        .lines()
        .find(|l| l.starts_with("Summary: "))
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    let count = |label: &str| -> usize {
        let rest = &line[line
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {line}"))
            + label.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    ["Valid: ", "Invalid: ", "Errors: ", "Skipped: "].map(count)
}

/// The number of YAML documents with a top-level kind.
fn count_objects(yaml: &str) -> usize {
    yaml.lines().filter(|l| l.starts_with("kind: ")).count()
}

/// The text of a file or of every .yaml file in a directory, in the repository.
fn read(relative: &str) -> String {
    let path = repo_path(relative);
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        return files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
    }
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `helm template <release> charts/fairlead --namespace <namespace> ARGS`; the
/// exit status and stdout + stderr.
fn helm_template(release: &str, namespace: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["template", release, CHART, "--namespace", namespace];
    all.extend(args);
    let (out, text) = run(&tool("helm"), &all, &[], "");
    (out.status.success(), text)
}

/// Asserts kubeconform found every object of `yaml` valid (none skipped).
fn assert_all_valid(ok: bool, text: &str, yaml: &str) {
    assert!(ok, "kubeconform -strict failed:\n{text}");
    let objects = count_objects(yaml);
    assert!(objects > 0);
    assert_eq!(summary(text), [objects, 0, 0, 0], "{text}");
}

#[test]
fn the_chart_crds_are_the_deploy_crds() {
    let chart = read("charts/fairlead/crds/fairlead.io_crds.yaml");
    let deploy = read("deploy/crds/fairlead.io_crds.yaml");
    assert!(
        chart == deploy,
        "charts/fairlead/crds/fairlead.io_crds.yaml differs from deploy/crds/fairlead.io_crds.yaml: \
         run `cp deploy/crds/fairlead.io_crds.yaml charts/fairlead/crds/`"
    );
}

#[test]
fn the_chart_version_is_the_workspace_version() {
    let chart = read("charts/fairlead/Chart.yaml");
    let version = env!("CARGO_PKG_VERSION");
    for wanted in [
        format!("version: {version}"),
        format!("appVersion: \"{version}\""),
    ] {
        assert!(
            chart.lines().any(|l| l == wanted),
            "charts/fairlead/Chart.yaml lacks `{wanted}` (the Cargo workspace version)"
        );
    }
}

#[test]
fn deploy_is_what_the_chart_renders() {
    let dir = std::env::temp_dir().join(format!("fairlead-render-deploy-{}", std::process::id()));
    let helm = tool("helm");
    let script = repo_path("scripts/render-deploy.sh");
    let (out, text) = run(&script, &[&dir.to_string_lossy()], &[("HELM", &helm)], "");
    assert!(
        out.status.success(),
        "scripts/render-deploy.sh failed:\n{text}"
    );
    for name in ["rbac.yaml", "operator.yaml", "dataplane.yaml"] {
        let rendered = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            rendered == read(&format!("deploy/{name}")),
            "deploy/{name} is not what the chart renders: run scripts/render-deploy.sh \
             (and edit charts/fairlead, not deploy/{name})"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn helm_lint_strict_passes_with_default_and_non_default_values() {
    for extra in [&[][..], &["--values", NON_DEFAULT_VALUES][..]] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend(extra);
        let (out, text) = run(&tool("helm"), &args, &[], "");
        assert!(out.status.success(), "helm {}:\n{text}", args.join(" "));
        assert!(
            text.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{text}"
        );
    }
}

#[test]
fn kubeconform_accepts_deploy_and_the_examples() {
    let (ok, text) = kubeconform(&DEPLOY, "");
    let all: String = DEPLOY.iter().map(|f| read(f)).collect();
    assert_all_valid(ok, &text, &all);
}

#[test]
fn kubeconform_accepts_the_chart_with_default_values() {
    let (ok, yaml) = helm_template("fairlead", "fairlead-system", &["--include-crds"]);
    assert!(ok, "{yaml}");
    let (ok, text) = kubeconform(&[], &yaml);
    assert_all_valid(ok, &text, &yaml);
}

#[test]
fn kubeconform_accepts_the_chart_with_non_default_values() {
    let (ok, yaml) = helm_template(
        "fairlead",
        "fairlead-system",
        &["--include-crds", "--values", NON_DEFAULT_VALUES],
    );
    assert!(ok, "{yaml}");
    for kind in ["ServiceMonitor", "PodMonitor", "Service"] {
        assert!(
            yaml.contains(&format!("\nkind: {kind}\n")),
            "no {kind} in:\n{yaml}"
        );
    }
    let (ok, text) = kubeconform(&[], &yaml);
    assert_all_valid(ok, &text, &yaml);
}

#[test]
fn kubeconform_strict_rejects_unknown_fields() {
    let operator = read("deploy/operator.yaml");
    let typo = operator.replace(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: true\n            readOnlyRootFilesytem: true",
    );
    assert_ne!(typo, operator);
    let (ok, text) = kubeconform(&[], &typo);
    assert!(!ok, "a Deployment with an unknown field passed:\n{text}");
    assert!(
        text.contains("additional properties 'readOnlyRootFilesytem' not allowed"),
        "{text}"
    );
    assert_eq!(summary(&text), [0, 1, 0, 0], "{text}");

    let backend = "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {name: app}\n\
                   spec:\n  servers:\n    - {name: one, address: 127.0.0.1, port: 80, wieght: 2}\n";
    let (ok, text) = kubeconform(&[], backend);
    assert!(!ok, "a Backend with an unknown field passed:\n{text}");
    assert!(text.contains("'wieght' not allowed"), "{text}");
    let (ok, text) = kubeconform(&[], &backend.replace("wieght", "weight"));
    assert_all_valid(ok, &text, backend);
}

#[test]
fn the_values_schema_rejects_bad_values() {
    for (set, complaint) in [
        ("operator.replicas=-1", "at '/operator/replicas': minimum"),
        ("log.format=xml", "at '/log/format'"),
        (
            "dataplane.adminPort=70000",
            "at '/dataplane/adminPort': maximum",
        ),
        (
            "operator.leaderElection.leaseDuration=2",
            "leaseDuration': minimum",
        ),
        ("surprise=1", "additional properties 'surprise' not allowed"),
        // Not the schema but the template: replicas without election would all act.
        (
            "operator.leaderElection.enabled=false",
            "operator.replicas must be 1",
        ),
    ] {
        let (ok, text) = helm_template("fairlead", "fairlead-system", &["--set", set]);
        assert!(!ok, "helm template --set {set} rendered");
        assert!(text.contains(complaint), "--set {set}: {text}");
    }
}

#[test]
fn another_release_renames_objects_but_not_what_the_operator_looks_for() {
    let (ok, yaml) = helm_template("edge", "lb", &[]);
    assert!(ok, "{yaml}");
    for wanted in [
        "name: edge-fairlead-dataplane",
        "name: edge-fairlead-operator",
        "namespace: lb\n",
        // Fixed in the operator: the Pods' label, the Secrets, the admin port's name.
        "app.kubernetes.io/name: fairlead-dataplane",
        "secretName: fairlead-dataplane-tls",
        "resourceNames: [\"fairlead-dataplane-tls\", \"fairlead-operator-client\"]",
        "- name: admin\n",
        // Each node keeps its state in its own directory.
        "subPathExpr: $(FAIRLEAD_NODE_NAME)",
    ] {
        assert!(yaml.contains(wanted), "no {wanted:?} in:\n{yaml}");
    }
    assert!(!yaml.contains("fairlead-system"), "{yaml}");
}
