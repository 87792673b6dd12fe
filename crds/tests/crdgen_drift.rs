//! The committed CRD manifests are what the code generates.

#[test]
fn committed_crds_match_the_code() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/crds/fairlead.io_crds.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == fairlead_crds::crds_yaml(),
        "deploy/crds/fairlead.io_crds.yaml is out of date with crds/src; \
         run `cargo run -p fairlead-crds --bin crdgen > deploy/crds/fairlead.io_crds.yaml`"
    );
}

#[test]
fn crds_yaml_holds_four_crds() {
    let yaml = fairlead_crds::crds_yaml();
    assert_eq!(yaml.matches("kind: CustomResourceDefinition").count(), 4);
    assert_eq!(yaml.matches("\n---\n").count(), 3);
    for name in [
        "frontends.fairlead.io",
        "backends.fairlead.io",
        "virtualips.fairlead.io",
        "addresspools.fairlead.io",
    ] {
        assert!(yaml.contains(&format!("name: {name}")), "{name} missing");
    }
}
