//! Loading manifests from files and directories — the same YAML a user would
//! `kubectl apply` — into a render [`Snapshot`], each object remembering the
//! file and line it came from.
//!
//! Parsing is as strict as the API server's strict field validation: an
//! unknown field is an error, not silently dropped.

mod documents;
mod files;
mod pem;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::SourceError;
use crate::render::{RenderError, Snapshot, object_key};
use documents::{Document, SyntaxError};
pub use files::{Fingerprint, manifest_files};

/// The kinds fairlead reads, by `apiVersion` and `kind`.
const KINDS: [(&str, &str); 6] = [
    ("fairlead.io/v1alpha1", "Frontend"),
    ("fairlead.io/v1alpha1", "Backend"),
    ("fairlead.io/v1alpha1", "VirtualIP"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
];

/// Where an object was defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line of the object's first line.
    pub line: usize,
}

/// What [`load`] read: the objects, where each came from, and every problem.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The objects that parsed, in file order.
    pub snapshot: Snapshot,
    /// Origin of each object, by `Kind namespace/name`.
    pub origins: BTreeMap<String, Origin>,
    /// Objects skipped because fairlead does not read their kind.
    pub warnings: Vec<String>,
    /// Files, documents and objects that do not load; such objects are not in the snapshot.
    pub errors: Vec<SourceError>,
    /// Manifest files read.
    pub files: usize,
}

impl Manifests {
    /// Places a render error at the file and line of its object.
    pub fn locate(&self, error: &RenderError) -> SourceError {
        let origin = self.origins.get(&error.object);
        SourceError {
            file: origin.map_or_else(|| PathBuf::from("<rendered>"), |o| o.file.clone()),
            line: origin.map(|o| o.line),
            object: Some(error.object.clone()),
            field: Some(error.field.clone()).filter(|f| !f.is_empty()),
            message: error.message.clone(),
        }
    }
}

/// Reads every manifest under `paths` (see [`manifest_files`]); objects without
/// a namespace get `namespace`. Problems are collected, not fatal: all of them
/// are in [`Manifests::errors`].
pub fn load(paths: &[PathBuf], namespace: &str) -> Manifests {
    let (files, errors) = manifest_files(paths);
    let mut manifests = Manifests {
        errors,
        files: files.len(),
        ..Manifests::default()
    };
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => add_text(&mut manifests, &file, &text, namespace),
            Err(e) => manifests.errors.push(files::io_error(&file, &e)),
        }
    }
    manifests
}

/// Reads the objects of one file's text, `file` naming it in errors; as [`load`].
pub fn load_text(file: &Path, text: &str, namespace: &str) -> Manifests {
    let mut manifests = Manifests {
        files: 1,
        ..Manifests::default()
    };
    add_text(&mut manifests, file, text, namespace);
    manifests
}

/// Adds the objects of one file's text to `manifests`.
fn add_text(manifests: &mut Manifests, file: &Path, text: &str, namespace: &str) {
    if pem::is_pem(file) {
        if text.trim().is_empty() {
            return manifests.errors.push(whole_file(file, "empty PEM file"));
        }
        let document = pem::secret_document(file, text);
        return load_object(manifests, file, document, namespace);
    }
    let is_json = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let documents = if is_json {
        documents::json_documents(text)
    } else {
        documents::yaml_documents(text)
    };
    if documents.is_empty() {
        // An empty or truncated-to-nothing file is a mistake, never an
        // intent to remove every listener.
        manifests.errors.push(whole_file(
            file,
            "no objects (the file is empty or only comments)",
        ));
    }
    for document in documents {
        match document {
            Ok(document) => load_object(manifests, file, document, namespace),
            Err(SyntaxError { line, message }) => manifests.errors.push(SourceError {
                file: file.to_path_buf(),
                line: Some(line),
                object: None,
                field: None,
                message,
            }),
        }
    }
}

/// A problem with the whole of `file`.
fn whole_file(file: &Path, message: &str) -> SourceError {
    SourceError {
        file: file.to_path_buf(),
        line: None,
        object: None,
        field: None,
        message: message.to_string(),
    }
}

fn load_object(manifests: &mut Manifests, file: &Path, document: Document, namespace: &str) {
    let line = document.line;
    let error = |object: Option<String>, field: Option<&str>, message: String| SourceError {
        file: file.to_path_buf(),
        line: Some(line),
        object,
        field: field.map(str::to_string),
        message,
    };
    match add_object(manifests, document, namespace) {
        Ok(Added::Object(key)) => {
            let origin = Origin {
                file: file.to_path_buf(),
                line,
            };
            manifests.origins.insert(key, origin);
        }
        Ok(Added::Skipped { key, api_version }) => manifests.warnings.push(format!(
            "{}:{line}: skipping {key} ({api_version}): fairlead does not read this kind",
            file.display()
        )),
        Err(Rejected { object, problems }) => {
            for (field, message) in problems {
                manifests
                    .errors
                    .push(error(object.clone(), field.as_deref(), message));
            }
        }
    }
}

/// What became of a document.
enum Added {
    /// Added to the snapshot, as `Kind namespace/name`.
    Object(String),
    /// Not a kind fairlead reads.
    Skipped { key: String, api_version: String },
}

/// A document that is not a valid object: `(field, message)` problems.
struct Rejected {
    object: Option<String>,
    problems: Vec<(Option<String>, String)>,
}

impl Rejected {
    fn one(object: Option<&str>, field: Option<&str>, message: impl Into<String>) -> Rejected {
        Rejected {
            object: object.map(str::to_string),
            problems: vec![(field.map(str::to_string), message.into())],
        }
    }
}

fn add_object(
    manifests: &mut Manifests,
    document: Document,
    namespace: &str,
) -> Result<Added, Rejected> {
    let mut value = document.value;
    let Some(object) = value.as_object_mut() else {
        return Err(Rejected::one(
            None,
            None,
            "a manifest must be a mapping with apiVersion and kind",
        ));
    };
    let text = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(Rejected::one(None, None, "apiVersion and kind must be set"));
    }
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(Rejected::one(None, Some("metadata"), "must be a mapping"));
    };
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespace = metadata
        .entry("namespace")
        .or_insert_with(|| Value::String(namespace.into()))
        .as_str()
        .unwrap_or("")
        .to_string();
    let key = object_key(&kind, &namespace, &name);
    if !KINDS.contains(&(api_version.as_str(), kind.as_str())) {
        let served = KINDS
            .iter()
            .find(|(v, k)| *k == kind && group(v) == group(&api_version));
        if let Some((served, _)) = served {
            let message = format!("apiVersion {api_version} is not served; use {served}");
            return Err(Rejected::one(Some(&key), Some("apiVersion"), message));
        }
        return Ok(Added::Skipped {
            key: shown(&key),
            api_version,
        });
    }
    if name.is_empty() {
        return Err(Rejected::one(
            Some(&key),
            Some("metadata.name"),
            "must be set",
        ));
    }
    if namespace.is_empty() {
        return Err(Rejected::one(
            Some(&key),
            Some("metadata.namespace"),
            "must be a non-empty string",
        ));
    }
    let label_name = kind == "Service";
    if let Some(problem) = name_problem(&name, label_name) {
        return Err(Rejected::one(
            Some(&shown(&key)),
            Some("metadata.name"),
            problem,
        ));
    }
    if let Some(problem) = name_problem(&namespace, true) {
        let field = Some("metadata.namespace");
        return Err(Rejected::one(Some(&shown(&key)), field, problem));
    }
    if let Some(first) = manifests.origins.get(&key) {
        let message = format!(
            "duplicate object, first defined at {}:{}",
            first.file.display(),
            first.line
        );
        return Err(Rejected::one(Some(&key), None, message));
    }
    let snapshot = &mut manifests.snapshot;
    let added = match kind.as_str() {
        "Frontend" => decode(value).map(|o| snapshot.frontends.push(o)),
        "Backend" => decode(value).map(|o| snapshot.backends.push(o)),
        "VirtualIP" => decode(value).map(|o| snapshot.virtual_ips.push(o)),
        "Secret" => decode(value).map(|o| snapshot.secrets.push(o)),
        "Service" => decode(value).map(|o| snapshot.services.push(o)),
        _ => decode(value).map(|o| snapshot.endpoint_slices.push(o)),
    };
    match added {
        Ok(()) => Ok(Added::Object(key)),
        Err(problems) => Err(Rejected {
            object: Some(key),
            problems,
        }),
    }
}

/// Why `name` is not a Kubernetes object name: a DNS subdomain (at most 253
/// characters), or with `label` a DNS label (at most 63, no dots), as
/// namespaces and Services are named.
fn name_problem(name: &str, label: bool) -> Option<String> {
    let max = if label { 63 } else { 253 };
    let what = if label {
        "lowercase letters, digits and '-'"
    } else {
        "lowercase letters, digits, '-' and '.'"
    };
    if name.len() > max {
        return Some(format!(
            "{} characters, at most {max} are allowed",
            name.len()
        ));
    }
    let parts_ok = name.split('.').all(|part| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    });
    let ok = parts_ok && !(label && name.contains('.'));
    (!ok).then(|| {
        format!("{name:?} is not a valid name ({what}, starting and ending with a letter or digit)")
    })
}

/// An object key as shown in errors: cut short when a part is too long to print.
fn shown(key: &str) -> String {
    match key.char_indices().nth(120) {
        Some((cut, _)) => format!("{}... ({} characters)", &key[..cut], key.len()),
        None => key.to_string(),
    }
}

/// The API group of an `apiVersion` (`""` for the core group).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Decodes a typed object; unknown fields and type errors come back as
/// `(field path, message)`. `apiVersion` and `kind`, checked before, may be
/// ignored by the type.
fn decode<T: DeserializeOwned>(value: Value) -> Result<T, Vec<(Option<String>, String)>> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        let path = field_path(&path);
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    let decoded = serde_path_to_error::deserialize(ignored);
    let mut problems: Vec<(Option<String>, String)> = unknown
        .into_iter()
        .map(|field| (Some(field), "unknown field".to_string()))
        .collect();
    match decoded {
        Ok(object) if problems.is_empty() => Ok(object),
        Ok(_) => Err(problems),
        Err(e) => {
            let path = e.path().to_string();
            let field = Some(path).filter(|p| p != "." && !p.is_empty());
            problems.push((field, e.into_inner().to_string()));
            Err(problems)
        }
    }
}

/// `spec.servers[1].port` for a serde_ignored path.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests;
