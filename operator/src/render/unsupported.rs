//! Fields of the API that this version of fairlead does not implement yet.
//! Setting one is an error, never silently ignored; remove an entry when its
//! feature lands.

use fairlead_crds::FrontendSpec;

/// The message for a field that is not built yet.
pub(super) const NOT_IMPLEMENTED: &str = "not implemented yet in this version of fairlead";

/// Field paths set in a Frontend spec that are not implemented.
/// Of `spec.stats`, only `prometheusPath` is built: the page's fields are
/// errors, and so is a stats block without `prometheusPath` (it asks for the page).
pub(super) fn frontend_fields(spec: &FrontendSpec) -> Vec<String> {
    let stats = spec.stats.clone().unwrap_or_default();
    let page = [
        ("spec.stats.path", stats.path.is_some()),
        ("spec.stats.refresh", stats.refresh.is_some()),
        ("spec.stats.showNode", stats.show_node.is_some()),
        ("spec.stats.authSecret", stats.auth_secret.is_some()),
    ];
    let page_only = spec.stats.is_some()
        && stats.prometheus_path.is_none()
        && !page.iter().any(|(_, set)| *set);
    [
        ("spec.logging", spec.logging.is_some()),
        ("spec.stats", page_only),
    ]
    .into_iter()
    .chain(page)
    .filter(|(_, set)| *set)
    .map(|(field, _)| field.to_string())
    .collect()
}
