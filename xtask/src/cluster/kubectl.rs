//! kubectl against the cluster: commands and manifests applied from memory.

use super::*;

impl Cluster {
    /// The directory of the kubectl built with the control plane (`real` only).
    pub(crate) fn kubectl_dir(&self) -> Option<&Path> {
        self.kubectl.parent().filter(|d| !d.as_os_str().is_empty())
    }

    /// Runs the real kubectl as the administrator; fails with its stderr.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .context("cannot run kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply -f -` of a manifest.
    pub(crate) fn apply(&self, manifest: &str) -> Result<String> {
        self.apply_args(&[], manifest)
    }

    /// `kubectl -n NAMESPACE apply -f -` of a manifest.
    pub(crate) fn apply_in(&self, namespace: &str, manifest: &str) -> Result<String> {
        self.apply_args(&["-n", namespace], manifest)
    }

    pub(super) fn apply_args(&self, args: &[&str], manifest: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .args(["apply", "-f", "-"])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run kubectl")?;
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(manifest.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
