//! `cargo xtask image`: the flaggerd and loadtester container images, built with Debian's
//! buildah (or podman) from `deploy/images/*.Containerfile`, then checked from the outside:
//! the configured user is numeric and not root, the entrypoint is the expected one, the
//! size is under its bound, the binaries taken back out of the image are static, and
//! `flaggerd -version` runs from the extracted binary. Containers cannot run on these
//! machines; the loadtester's programs are run from the image's own files with `chroot`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::cluster;

mod check;
mod debian;

use check::{check, programs_run};
use debian::debian_rootfs;

/// The Rust target of the images' binaries: statically linked with musl.
const MUSL: &str = "x86_64-unknown-linux-musl";

/// gRPC's health service definition, `/tmp/ghz/health.proto` in the loadtester image.
pub(crate) const HEALTH_PROTO: &str = "deploy/images/health.proto";
/// The Go module of helm, grpc_health_probe and ghz.
const TOOLS: &str = "xtask/tools";

/// The Go commands of [`TOOLS`]: (binary, package). `go build` names a binary after its
/// package's last element; grpc-health-probe is renamed to the name its users call.
pub(crate) const TOOL_COMMANDS: [(&str, &str); 3] = [
    ("helm", "helm.sh/helm/v4/cmd/helm"),
    (
        "grpc_health_probe",
        "github.com/grpc-ecosystem/grpc-health-probe",
    ),
    ("ghz", "github.com/bojand/ghz/cmd/ghz"),
];

/// Upper bounds of the images' sizes, in MiB.
const MAX_FLAGGERD_MIB: u64 = 40;
const MAX_LOADTESTER_MIB: u64 = 400;

/// One image: its name, Containerfile, staging folder and what is checked.
struct Image {
    name: &'static str,
    /// Where a release pushes it; deploy/ and the chart name it.
    repository: &'static str,
    containerfile: &'static str,
    entrypoint: &'static [&'static str],
    user: &'static str,
    max_mib: u64,
    /// Paths inside the image of binaries that must be static.
    statics: &'static [&'static str],
}

const FLAGGERD: Image = Image {
    name: "flaggerd",
    repository: "ghcr.io/flaggerd/flaggerd",
    containerfile: "deploy/images/flaggerd.Containerfile",
    entrypoint: &["/usr/local/bin/flaggerd"],
    user: "65532:65532",
    max_mib: MAX_FLAGGERD_MIB,
    statics: &["usr/local/bin/flaggerd"],
};

const LOADTESTER: Image = Image {
    name: "loadtester",
    repository: "ghcr.io/flaggerd/flaggerd-loadtester",
    containerfile: "deploy/images/loadtester.Containerfile",
    entrypoint: &["./loadtester"],
    user: "10001:10001",
    max_mib: MAX_LOADTESTER_MIB,
    statics: &[
        "home/app/loadtester",
        "usr/local/bin/helm",
        "usr/local/bin/grpc_health_probe",
        "usr/local/bin/ghz",
    ],
};

pub(crate) fn run() -> Result<()> {
    let builder = builder()?;
    let version = env!("CARGO_PKG_VERSION");
    let revision = git_revision();
    crate::cargo_with(
        &["build", "--release", "--target", MUSL, "-p", "flaggerd", "-p", "loadtester"],
        &[
            ("FLAGGERD_REVISION", revision.as_ref()),
            ("CARGO_PROFILE_RELEASE_STRIP", "symbols".as_ref()),
        ],
    )
    .with_context(|| {
        format!("the static build needs Rust's {MUSL} target and musl-gcc: `rustup target add {MUSL}` and `apt-get install musl-tools`")
    })?;
    let release = cluster::target_dir().join(MUSL).join("release");
    let tools = build_tools()?;
    let controlplane = cluster::real::build()?;
    let staging = cluster::target_dir().join("image");

    let dir = fresh(&staging.join("flaggerd"))?;
    copy(&release.join("flaggerd"), &dir.join("flaggerd"))?;
    copy(Path::new(CA_BUNDLE), &dir.join("ca-certificates.crt"))?;
    let flaggerd = build(&builder, &FLAGGERD, &dir, version)?;

    let dir = fresh(&staging.join("loadtester"))?;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    copy(&release.join("loadtester"), &bin.join("loadtester"))?;
    copy(&controlplane.join("kubectl"), &bin.join("kubectl"))?;
    for (name, _) in TOOL_COMMANDS {
        copy(&tools.join(name), &bin.join(name))?;
    }
    copy(Path::new(HEALTH_PROTO), &dir.join("health.proto"))?;
    debian_rootfs(&staging.join("debs"), &dir.join("rootfs"))?;
    let loadtester = build(&builder, &LOADTESTER, &dir, version)?;

    let out = check(&builder, &FLAGGERD, &flaggerd, &staging)?;
    let flaggerd_bin = out.join("usr/local/bin/flaggerd");
    let printed = output(Command::new(&flaggerd_bin).arg("-version"))?;
    ensure!(
        printed.starts_with(&format!("flaggerd version {version} revision ")),
        "`flaggerd -version` from the image printed {printed:?}"
    );
    println!("  {} -version: {}", flaggerd_bin.display(), printed.trim());

    let out = check(&builder, &LOADTESTER, &loadtester, &staging)?;
    programs_run(&out)?;
    println!("\nxtask image: {flaggerd} and {loadtester} built and checked");
    Ok(())
}

/// Debian's CA bundle (package ca-certificates), copied into the flaggerd image.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// buildah, else podman; both build as root here.
fn builder() -> Result<String> {
    for program in ["buildah", "podman"] {
        if Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok(program.into());
        }
    }
    bail!("building images needs buildah or podman: `apt-get install buildah`")
}

/// `git rev-parse --short HEAD`, or `unknown` outside a git checkout.
fn git_revision() -> std::ffi::OsString {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
        .into()
}

/// Builds helm, grpc_health_probe and ghz from [`TOOLS`] with cgo off (static binaries),
/// unless they are already built from the same go.mod and go.sum.
pub(crate) fn build_tools() -> Result<PathBuf> {
    let bin = cluster::target_dir().join("tools").join("bin");
    let stamp = bin.join(".built-from");
    let module = Path::new(TOOLS);
    let read =
        |f: &str| std::fs::read_to_string(module.join(f)).with_context(|| format!("{TOOLS}/{f}"));
    let go_mod = read("go.mod")?;
    // helm and ghz print the version their release builds stamp in; stamp the pinned one.
    let version_of = |module: &str| cluster::real::required_version(&go_mod, TOOLS, module);
    let ldflags = format!(
        "-s -w -X helm.sh/helm/v4/internal/version.version={} -X main.version={}",
        version_of("helm.sh/helm/v4")?,
        version_of("github.com/bojand/ghz")?.trim_start_matches('v')
    );
    let pins = format!("{ldflags}\n{go_mod}\n{}", read("go.sum")?);
    let built = TOOL_COMMANDS.iter().all(|(b, _)| bin.join(b).is_file());
    if built && std::fs::read_to_string(&stamp).ok().as_deref() == Some(pins.as_str()) {
        return Ok(bin);
    }
    std::fs::create_dir_all(&bin)?;
    let out = std::path::absolute(&bin)?;
    let packages: Vec<&str> = TOOL_COMMANDS.iter().map(|(_, p)| *p).collect();
    println!(
        "\n$ (cd {TOOLS} && CGO_ENABLED=0 go build -trimpath -ldflags='{ldflags}' -o {}/ {})",
        out.display(),
        packages.join(" ")
    );
    let status = Command::new("go")
        .current_dir(module)
        .env("CGO_ENABLED", "0")
        .args(["build", "-trimpath", &format!("-ldflags={ldflags}"), "-o"])
        .arg(format!("{}/", out.display()))
        .args(&packages)
        .status()
        .context("cannot run go: install Go 1.26 or newer (https://go.dev/dl/)")?;
    ensure!(status.success(), "building {TOOLS} failed ({status})");
    for (name, package) in TOOL_COMMANDS {
        let built = bin.join(package.rsplit('/').next().unwrap_or(name));
        if built != bin.join(name) {
            std::fs::rename(&built, bin.join(name))?;
        }
    }
    std::fs::write(&stamp, pins)?;
    Ok(bin)
}

/// Builds `image` from the staging folder `dir`; returns its name.
fn build(builder: &str, image: &Image, dir: &Path, version: &str) -> Result<String> {
    let name = format!("{}:{version}", image.repository);
    let containerfile = std::path::absolute(image.containerfile)?;
    println!(
        "\n$ {builder} build -t {name} -f {} {}",
        image.containerfile,
        dir.display()
    );
    let mut cmd = Command::new(builder);
    cmd.args(["build", "--format", "oci", "-q", "-t", &name, "-f"])
        .arg(&containerfile)
        .arg(dir);
    storage(&mut cmd);
    exec(&mut cmd)?;
    Ok(name)
}

/// vfs storage and chroot isolation: what works as root inside these machines' sandbox.
fn storage(cmd: &mut Command) {
    cmd.env("STORAGE_DRIVER", "vfs")
        .env("BUILDAH_ISOLATION", "chroot");
}

/// An empty folder at `dir`.
fn fresh(dir: &Path) -> Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn exec(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
