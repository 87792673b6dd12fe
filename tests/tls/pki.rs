//! Throwaway certificates made with the `openssl` command at test start: a CA
//! and leaf certificates (EC P-256) signed by it, in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and the files of the certificates it signed.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// A fresh CA named `name` (its subject is `CN=name`), in its own directory.
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "fairlead-tls-{}-{name}-{}",
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        pki.new_certificate(&[
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        pki
    }

    /// Issues a certificate with subject `CN=cn` and these DNS names; its files
    /// are `{file}.crt` and `{file}.key`.
    pub fn issue(&self, file: &str, cn: &str, dns: &[&str]) {
        let san: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        self.new_certificate(&[
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName={}", san.join(",")),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            &format!("{file}.key"),
            "-out",
            &format!("{file}.crt"),
        ]);
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap()
    }

    /// `openssl req -x509` making a new EC P-256 key and a certificate valid
    /// for 2 days; `args` say the rest (subject, signer, files).
    fn new_certificate(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl req -x509 ... {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The file's path as a string for command lines.
pub fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
