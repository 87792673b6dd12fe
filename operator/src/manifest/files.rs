//! Which files `-f PATH...` names: files as given, directories walked
//! recursively for `.yaml`, `.yml`, `.json` and `.pem` (TLS material), in
//! sorted order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::SourceError;

/// Extensions read when walking a directory.
const EXTENSIONS: [&str; 4] = ["yaml", "yml", "json", "pem"];

/// Deepest directory nesting walked, a guard against symlink loops.
const MAX_DEPTH: usize = 32;

/// The manifest files under `paths`, each directory's entries sorted. Entries
/// whose name starts with `.` are skipped: they are hidden files, editor
/// leftovers, or the `..data` links of a mounted ConfigMap, whose files are
/// also reachable by their plain names.
pub fn manifest_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let (before, errors_before) = (files.len(), errors.len());
                walk(path, 0, &mut files, &mut errors);
                if files.len() == before && errors.len() == errors_before {
                    errors.push(SourceError {
                        file: path.clone(),
                        line: None,
                        object: None,
                        field: None,
                        message: "no manifest files (.yaml, .yml, .json, .pem) in this directory"
                            .into(),
                    });
                }
            }
            Ok(_) => files.push(path.clone()),
            Err(e) => errors.push(io_error(path, &e)),
        }
    }
    (files, errors)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, errors: &mut Vec<SourceError>) {
    if depth > MAX_DEPTH {
        errors.push(SourceError {
            file: dir.to_path_buf(),
            line: None,
            object: None,
            field: None,
            message: format!("directories nested deeper than {MAX_DEPTH} (a symlink loop?)"),
        });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(io_error(dir, &e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, depth + 1, files, errors),
            Ok(_) if has_manifest_extension(&path) => files.push(path),
            Ok(_) => {}
            Err(e) => errors.push(io_error(&path, &e)),
        }
    }
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

pub(super) fn io_error(path: &Path, e: &std::io::Error) -> SourceError {
    SourceError {
        file: path.to_path_buf(),
        line: None,
        object: None,
        field: None,
        message: e.to_string(),
    }
}

/// What a change to the inputs would alter: size and modification time of
/// every manifest file and of every directory walked (a directory's time
/// changes when entries are added or removed). Cheap: metadata only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(BTreeSet<(PathBuf, Option<(u64, SystemTime)>)>);

impl Fingerprint {
    /// Takes the fingerprint of the inputs named by `paths`.
    pub fn of(paths: &[PathBuf]) -> Fingerprint {
        let mut seen = BTreeSet::new();
        let (files, _) = manifest_files(paths);
        let mut stamp = |path: &Path| {
            let meta = std::fs::metadata(path).ok();
            let stamp = meta.and_then(|m| Some((m.len(), m.modified().ok()?)));
            seen.insert((path.to_path_buf(), stamp));
        };
        for path in paths {
            stamp(path);
            if path.is_dir() {
                dirs_under(path, 0, &mut stamp);
            }
        }
        for file in &files {
            stamp(file);
        }
        Fingerprint(seen)
    }
}

fn dirs_under(dir: &Path, depth: usize, stamp: &mut impl FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && depth < MAX_DEPTH && path.is_dir() {
            stamp(&path);
            dirs_under(&path, depth + 1, stamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fairlead-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn directories_are_walked_sorted_recursively_skipping_hidden_and_other_files() {
        let dir = scratch("walk");
        for f in [
            "b.yaml",
            "a.json",
            "sub/c.yml",
            "notes.txt",
            ".hidden.yaml",
            "..data/d.yaml",
        ] {
            let path = dir.join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let (files, errors) = manifest_files(std::slice::from_ref(&dir));
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(&dir).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                Path::new("a.json"),
                Path::new("b.yaml"),
                Path::new("sub/c.yml")
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_path_is_an_error_and_a_new_file_changes_the_fingerprint() {
        let dir = scratch("fingerprint");
        let (_, errors) = manifest_files(&[dir.join("missing.yaml")]);
        assert_eq!(errors.len(), 1);
        let before = Fingerprint::of(std::slice::from_ref(&dir));
        assert_eq!(before, Fingerprint::of(std::slice::from_ref(&dir)));
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/new.yaml"), "x").unwrap();
        assert_ne!(before, Fingerprint::of(std::slice::from_ref(&dir)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
