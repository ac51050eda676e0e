//! The loadtester's Debian userland: packages and their dependency closure, downloaded and
//! unpacked without running their maintainer scripts.

use super::*;

/// Debian packages unpacked into the loadtester image, with what they depend on.
pub(super) const DEBIAN_PACKAGES: [&str; 4] = ["bash", "curl", "hey", "busybox-static"];

/// Debian packages of the closure left out: what only maintainer scripts and package
/// management use (the image never runs them).
pub(super) const LEFT_OUT: [&str; 4] = ["debconf", "perl-base", "dpkg", "tar"];

/// The Debian packages of [`DEBIAN_PACKAGES`] and their dependencies, downloaded into
/// `debs` (kept between runs) and unpacked into `rootfs` without running their scripts;
/// then `/bin/sh` (bash), BusyBox's applets where no package gives the program, and the
/// user `app`.
pub(super) fn debian_rootfs(debs: &Path, rootfs: &Path) -> Result<()> {
    std::fs::create_dir_all(debs)?;
    let closure = output(
        Command::new("apt-cache")
            .args(["depends", "--recurse", "--no-recommends", "--no-suggests"])
            .args([
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
            ])
            .args(DEBIAN_PACKAGES),
    )
    .context("apt-cache (Debian's apt) lists the packages' dependencies")?;
    let mut packages: Vec<&str> = closure
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('<'))
        .filter(|p| !LEFT_OUT.contains(p))
        .collect();
    packages.sort_unstable();
    packages.dedup();
    let have = |p: &str| {
        std::fs::read_dir(debs).is_ok_and(|mut d| {
            d.any(|e| {
                e.is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{p}_"))
                })
            })
        })
    };
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !have(p)).collect();
    if !missing.is_empty() {
        println!(
            "\n$ (cd {} && apt-get download {})",
            debs.display(),
            missing.join(" ")
        );
        let download = || {
            Command::new("apt-get")
                .current_dir(debs)
                .arg("download")
                .args(&missing)
                .status()
        };
        if !download().is_ok_and(|s| s.success()) {
            // A fresh machine may not have read the package lists yet.
            exec(Command::new("apt-get").args(["update", "-qq"]))?;
            ensure!(
                download()?.success(),
                "apt-get download {} failed",
                missing.join(" ")
            );
        }
    }
    println!(
        "  unpacking {} Debian packages into {}",
        packages.len(),
        rootfs.display()
    );
    for entry in std::fs::read_dir(debs)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if packages.iter().any(|p| name.starts_with(&format!("{p}_"))) {
            exec(Command::new("dpkg-deb").arg("-x").arg(&path).arg(rootfs))?;
        }
    }
    let link = |target: &str, at: &Path| -> Result<()> {
        if at.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(target, at)
                .with_context(|| format!("cannot link {} to {target}", at.display()))?;
        }
        Ok(())
    };
    link("bash", &rootfs.join("bin/sh"))?;
    let applets = output(Command::new(rootfs.join("bin/busybox")).arg("--list"))?;
    let local = rootfs.join("usr/local/bin");
    std::fs::create_dir_all(&local)?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        let given = ["bin", "usr/bin", "sbin", "usr/sbin"]
            .iter()
            .any(|d| rootfs.join(d).join(applet).symlink_metadata().is_ok());
        if !given {
            link("/bin/busybox", &local.join(applet))?;
        }
    }
    let etc = rootfs.join("etc");
    std::fs::create_dir_all(etc.join("ssl/certs"))?;
    copy(
        Path::new(CA_BUNDLE),
        &etc.join("ssl/certs/ca-certificates.crt"),
    )?;
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\napp:x:10001:10001:app:/home/app:/bin/bash\n",
    )?;
    std::fs::write(etc.join("group"), "root:x:0:\napp:x:10001:\n")?;
    std::fs::create_dir_all(rootfs.join("tmp"))?;
    std::fs::set_permissions(
        rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;
    Ok(())
}
