//! Fields of the API that this version of fairlead does not implement yet.
//! Setting one is an error, never silently ignored; remove an entry when its
//! feature lands.

use fairlead_crds::FrontendSpec;

/// The message for a field that is not built yet.
pub(super) const NOT_IMPLEMENTED: &str = "not implemented yet in this version of fairlead";

/// Field paths set in a Frontend spec that are not implemented.
pub(super) fn frontend_fields(spec: &FrontendSpec) -> Vec<String> {
    [("spec.logging", spec.logging.is_some())]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(field, _)| field.to_string())
        .collect()
}
