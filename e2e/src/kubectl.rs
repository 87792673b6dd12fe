//! Running the built kubectl as admin, the same way for [`crate::Cluster`] and
//! [`crate::NodeCluster`]: each says how to start it, the rest is shared.

use std::ffi::OsStr;
use std::process::Output;

use anyhow::bail;

/// kubectl as the cluster's admin.
pub trait Kubectl {
    /// Runs kubectl with `args`, and `stdin` when given (for `-f -`).
    fn kubectl_with<I, S>(&self, args: I, stdin: Option<&str>) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>;

    /// Runs kubectl with `args`.
    fn kubectl<I, S>(&self, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_with(args, None)
    }

    /// Runs kubectl with `args` and `stdin` (for `-f -`).
    fn kubectl_stdin<I, S>(&self, args: I, stdin: &str) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.kubectl_with(args, Some(stdin))
    }

    /// Runs kubectl and returns its stdout; an error with stderr when it fails.
    fn kubectl_ok<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.kubectl(&args)?;
        ok_stdout(&args, out)
    }

    /// Like [`Kubectl::kubectl_ok`], with `stdin`.
    fn kubectl_stdin_ok<I, S>(&self, args: I, stdin: &str) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.kubectl_stdin(&args, stdin)?;
        ok_stdout(&args, out)
    }
}

fn ok_stdout<S: AsRef<OsStr>>(args: &[S], out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        bail!(
            "kubectl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
