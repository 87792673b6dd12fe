//! The last good config on local disk, so a restarted dataplane serves
//! before the operator pushes again.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::DataplaneConfig;

const FILE: &str = "config.json";
const TEMP: &str = ".config.json.tmp";

/// The state directory (`--state-dir`).
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Uses `dir`, creating it when missing.
    pub fn open(dir: &Path) -> io::Result<StateDir> {
        fs::create_dir_all(dir)?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the config is kept.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The persisted config; `None` when there is none, or (logged) when it
    /// cannot be read or is not a valid config.
    pub fn load(&self) -> Option<DataplaneConfig> {
        let path = self.config_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no persisted config");
                return None;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "persisted config unreadable; ignored");
                return None;
            }
        };
        match DataplaneConfig::from_json(&text) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "persisted config is corrupt; ignored");
                None
            }
        }
    }

    /// Replaces the persisted config atomically: a temporary file in the same
    /// directory is written and synced, then renamed over the old one.
    pub fn save(&self, config: &DataplaneConfig) -> io::Result<()> {
        let temp = self.dir.join(TEMP);
        let mut file = File::create(&temp)?;
        file.write_all(config.to_json_pretty().as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, self.config_path())?;
        // Make the rename itself durable.
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("fairlead-state-{}-{name}", std::process::id()))
    }

    #[test]
    fn save_then_load_and_corrupt_is_ignored() {
        let dir = temp_dir("roundtrip");
        let _ = fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir.join("nested")).unwrap();
        assert_eq!(state.load(), None);
        let config = DataplaneConfig {
            version: 7,
            ..Default::default()
        };
        state.save(&config).unwrap();
        assert_eq!(state.load(), Some(config));
        assert!(!dir.join("nested").join(TEMP).exists());
        fs::write(state.config_path(), "{\"version\": ").unwrap();
        assert_eq!(state.load(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
