//! Prints the CustomResourceDefinitions of fairlead as one multi-document YAML:
//! `cargo run -p fairlead-crds --bin crdgen > deploy/crds/fairlead.io_crds.yaml`
fn main() {
    print!("{}", fairlead_crds::crds_yaml());
}
