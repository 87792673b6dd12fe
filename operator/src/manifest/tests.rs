use super::*;

fn load_str(name: &str, text: &str) -> Manifests {
    load_text(Path::new(name), text, "default")
}

fn lines(manifests: &Manifests) -> Vec<String> {
    manifests.errors.iter().map(ToString::to_string).collect()
}

const BACKEND: &str = "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata:
  name: app
spec:
  servers:
    - {name: srv1, address: 127.0.0.1, port: 9001}
";

#[test]
fn objects_get_the_default_namespace_and_their_origin() {
    let text = format!(
        "# comment\n{BACKEND}---\n{}",
        BACKEND.replace("name: app", "{name: app, namespace: other}")
    );
    let m = load_str("f.yaml", &text);
    assert!(m.errors.is_empty(), "{:?}", lines(&m));
    assert_eq!(m.snapshot.backends.len(), 2);
    assert_eq!(
        m.snapshot.backends[0].metadata.namespace.as_deref(),
        Some("default")
    );
    assert_eq!(
        m.origins["Backend default/app"],
        Origin {
            file: "f.yaml".into(),
            line: 2
        }
    );
    assert_eq!(m.origins["Backend other/app"].line, 10);
}

#[test]
fn unknown_fields_are_errors_with_their_path() {
    let text = BACKEND.replace("port: 9001}", "port: 9001, wieght: 2}") + "  defaultbackend: x\n";
    let m = load_str("f.yaml", &text);
    assert_eq!(
        lines(&m),
        [
            "f.yaml:1: Backend default/app: spec.defaultbackend: unknown field",
            "f.yaml:1: Backend default/app: spec.servers[0].wieght: unknown field",
        ]
    );
    assert!(m.snapshot.backends.is_empty());
}

#[test]
fn type_errors_name_the_field() {
    let m = load_str("f.yaml", &BACKEND.replace("port: 9001", "port: high"));
    let errors = lines(&m);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("f.yaml:1: Backend default/app: spec.servers[0].port: invalid type"),
        "{errors:?}"
    );
}

#[test]
fn duplicates_point_at_the_first_definition() {
    let m = load_str("f.yaml", &format!("{BACKEND}---\n{BACKEND}"));
    assert_eq!(
        lines(&m),
        ["f.yaml:9: Backend default/app: duplicate object, first defined at f.yaml:1"]
    );
}

#[test]
fn other_kinds_are_skipped_with_a_warning() {
    let m = load_str(
        "f.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    );
    assert!(m.errors.is_empty());
    assert_eq!(
        m.warnings,
        ["f.yaml:1: skipping Deployment default/web (apps/v1): fairlead does not read this kind"]
    );
}

#[test]
fn a_wrong_version_of_a_known_kind_is_an_error() {
    let m = load_str("f.yaml", &BACKEND.replace("v1alpha1", "v1"));
    assert_eq!(
        lines(&m),
        [
            "f.yaml:1: Backend default/app: apiVersion: apiVersion fairlead.io/v1 is not served; use fairlead.io/v1alpha1"
        ]
    );
}

#[test]
fn documents_without_kind_or_name_are_errors() {
    let m = load_str(
        "f.yaml",
        "metadata: {name: x}\n---\n- a list\n---\napiVersion: v1\nkind: Service\n",
    );
    assert_eq!(
        lines(&m),
        [
            "f.yaml:1: apiVersion and kind must be set",
            "f.yaml:3: a manifest must be a mapping with apiVersion and kind",
            "f.yaml:5: Service default/: metadata.name: must be set",
        ]
    );
}

#[test]
fn kubernetes_kinds_are_read_strictly_too() {
    let text = "apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app-1, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
stringData: {a: b}
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec: {prots: []}
";
    let m = load_str("f.yaml", text);
    assert_eq!(
        lines(&m),
        ["f.yaml:19: Service default/bad: spec.prots: unknown field"]
    );
    assert_eq!(m.snapshot.services.len(), 1);
    assert_eq!(m.snapshot.endpoint_slices.len(), 1);
    assert_eq!(m.snapshot.secrets.len(), 1);
}

#[test]
fn json_files_and_syntax_errors() {
    let m = load_str(
        "f.json",
        r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}"#,
    );
    assert!(m.errors.is_empty(), "{:?}", lines(&m));
    assert_eq!(m.origins["Secret default/s"].line, 1);
    let m = load_str("f.yaml", &format!("{BACKEND}---\nkind: [\n"));
    assert_eq!(m.snapshot.backends.len(), 1);
    let errors = lines(&m);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("f.yaml:9: YAML syntax: unclosed bracket"),
        "{errors:?}"
    );
}

#[test]
fn render_errors_are_placed_at_their_object() {
    let m = load_str("f.yaml", BACKEND);
    let error = RenderError {
        object: "Backend default/app".into(),
        field: "spec.retries".into(),
        message: "-1 is negative".into(),
    };
    assert_eq!(
        m.locate(&error).to_string(),
        "f.yaml:1: Backend default/app: spec.retries: -1 is negative"
    );
}

#[test]
fn files_without_objects_are_errors_naming_the_file() {
    for text in ["", "\n\n", "# only a comment\n", "---\n---\n", "---\n...\n"] {
        let m = load_str("lb.yaml", text);
        assert_eq!(
            lines(&m),
            ["lb.yaml: no objects (the file is empty or only comments)"],
            "{text:?}"
        );
    }
    let m = load_str("lb.json", " \n");
    assert_eq!(m.errors.len(), 1, "{:?}", lines(&m));
    assert!(lines(&m)[0].starts_with("lb.json:"), "{:?}", lines(&m));
    assert!(lines(&m)[0].contains("JSON syntax"), "{:?}", lines(&m));
    let m = load_str("site.pem", "\n");
    assert_eq!(lines(&m), ["site.pem: empty PEM file"]);
    // A file with objects fairlead does not read is not empty.
    let m = load_str(
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    assert!(m.errors.is_empty(), "{:?}", lines(&m));
}

#[test]
fn a_directory_without_manifest_files_is_an_error() {
    let dir = std::env::temp_dir().join(format!("fairlead-empty-dir-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("README.txt"), "not a manifest").unwrap();
    let m = load(std::slice::from_ref(&dir), "default");
    assert_eq!(
        lines(&m),
        [format!(
            "{}: no manifest files (.yaml, .yml, .json, .pem) in this directory",
            dir.display()
        )]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn names_follow_kubernetes_rules() {
    let backend = |name: &str| BACKEND.replace("name: app", &format!("name: {name}"));
    for ok in ["app", "a.b-c", "0x", &"a".repeat(253)] {
        let m = load_str("lb.yaml", &backend(ok));
        assert!(m.errors.is_empty(), "{ok}: {:?}", lines(&m));
    }
    for (bad, reason) in [
        ("App", "\"App\" is not a valid name"),
        ("-a", "\"-a\" is not a valid name"),
        ("a..b", "\"a..b\" is not a valid name"),
        ("a_b", "\"a_b\" is not a valid name"),
    ] {
        let m = load_str("lb.yaml", &backend(bad));
        assert_eq!(m.errors.len(), 1, "{bad}");
        let line = &lines(&m)[0];
        assert!(
            line.contains("metadata.name: ") && line.contains(reason),
            "{line}"
        );
    }
    let huge = "a".repeat(10 << 20);
    let m = load_str("lb.yaml", &backend(&huge));
    let line = &lines(&m)[0];
    assert!(line.len() < 400, "{}", line.len());
    assert!(
        line.ends_with("metadata.name: 10485760 characters, at most 253 are allowed"),
        "{line}"
    );
    // Services and namespaces are DNS labels.
    let service =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\nspec: {ports: [{port: 80}]}\n";
    let m = load_str("svc.yaml", service);
    assert!(
        lines(&m)[0].contains("\"a.b\" is not a valid name"),
        "{:?}",
        lines(&m)
    );
    let m = load_str(
        "lb.yaml",
        &BACKEND.replace("name: app", "name: app\n  namespace: a.b"),
    );
    assert!(
        lines(&m)[0].contains("metadata.namespace: \"a.b\""),
        "{:?}",
        lines(&m)
    );
}
