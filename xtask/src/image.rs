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

/// Debian packages unpacked into the loadtester image, with what they depend on.
const DEBIAN_PACKAGES: [&str; 4] = ["bash", "curl", "hey", "busybox-static"];

/// Debian packages of the closure left out: what only maintainer scripts and package
/// management use (the image never runs them).
const LEFT_OUT: [&str; 4] = ["debconf", "perl-base", "dpkg", "tar"];

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

/// The Debian packages of [`DEBIAN_PACKAGES`] and their dependencies, downloaded into
/// `debs` (kept between runs) and unpacked into `rootfs` without running their scripts;
/// then `/bin/sh` (bash), BusyBox's applets where no package gives the program, and the
/// user `app`.
fn debian_rootfs(debs: &Path, rootfs: &Path) -> Result<()> {
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

/// Checks `name`'s configuration and size, exports it and unpacks its layers; returns the
/// folder of its files.
fn check(builder: &str, image: &Image, name: &str, staging: &Path) -> Result<PathBuf> {
    println!("\nchecking {name}");
    let mut inspect = Command::new(builder);
    inspect.args(["inspect", "--type", "image", name]);
    storage(&mut inspect);
    let info: Value = serde_json::from_str(&output(&mut inspect)?).context("inspect's JSON")?;
    let config = &info["OCIv1"]["config"];
    let user = config["User"].as_str().unwrap_or_default();
    ensure!(
        user == image.user,
        "{name} runs as {user:?}, expected {:?}",
        image.user
    );
    let uid = user.split(':').next().unwrap_or_default();
    ensure!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "{name}'s user {user:?} must be a non-root number (runAsNonRoot checks it)"
    );
    let entrypoint: Vec<&str> = config["Entrypoint"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ensure!(
        entrypoint == image.entrypoint,
        "{name}'s entrypoint is {entrypoint:?}, expected {:?}",
        image.entrypoint
    );
    println!("  user {user}, entrypoint {entrypoint:?}");

    let oci = fresh(&staging.join(format!("{}-oci", image.name)))?;
    let mut push = Command::new(builder);
    push.args(["push", "-q", name])
        .arg(format!("oci:{}", oci.display()));
    storage(&mut push);
    exec(&mut push)?;
    let files = fresh(&staging.join(format!("{}-files", image.name)))?;
    let blob = |digest: &str| {
        oci.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index: Value = serde_json::from_slice(&std::fs::read(oci.join("index.json"))?)?;
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .context("index.json names no manifest")?;
    let manifest: Value = serde_json::from_slice(&std::fs::read(blob(manifest))?)?;
    let mut bytes = 0u64;
    for layer in manifest["layers"]
        .as_array()
        .context("the manifest has no layers")?
    {
        let digest = layer["digest"].as_str().context("a layer without digest")?;
        bytes += layer["size"].as_u64().unwrap_or_default();
        exec(
            Command::new("tar")
                .arg("-xf")
                .arg(blob(digest))
                .arg("-C")
                .arg(&files),
        )?;
    }
    let unpacked = dir_size(&files);
    let mib = unpacked / (1 << 20);
    println!(
        "  size: {mib} MiB unpacked, {} MiB of layers (bound {} MiB)",
        bytes / (1 << 20),
        image.max_mib
    );
    ensure!(
        mib <= image.max_mib,
        "{name} is {mib} MiB, over its bound of {} MiB",
        image.max_mib
    );
    for path in image.statics {
        let file = files.join(path);
        let elf = std::fs::read(&file).with_context(|| format!("{name} has no /{path}"))?;
        ensure!(
            is_static(&elf)?,
            "/{path} in {name} is linked dynamically (it names an ELF interpreter)"
        );
        println!("  /{path}: static");
    }
    Ok(files)
}

/// The loadtester image's programs, run from its own files (`chroot`, as its user): the
/// seeds' commands need each of them.
fn programs_run(root: &Path) -> Result<()> {
    let checks: [(&str, &str); 9] = [
        ("./loadtester -h", "loadtester"),
        ("curl --version", "curl "),
        ("hey 2>&1 | head -1", "Usage: hey"),
        ("kubectl version --client", "Client Version: v1."),
        ("helm version --short", "v4."),
        ("grpc_health_probe -version 2>&1", "0."),
        ("ghz --version", "0."),
        ("test -r /tmp/ghz/health.proto && echo readable", "readable"),
        ("echo token=abc | grep -o token | sed s/t/T/", "Token"),
    ];
    for (script, want) in checks {
        let mut cmd = Command::new("chroot");
        cmd.args(["--userspec=10001:10001"])
            .arg(root)
            .args(["/bin/bash", "-c", &format!("cd /home/app && {script}")])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/home/app");
        let out = cmd.output().context("cannot run chroot (coreutils)")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        ensure!(
            text.contains(want),
            "`{script}` in the loadtester image printed {text:?}, expected {want:?}"
        );
        println!(
            "  in the image: {script}: {}",
            text.lines().next().unwrap_or_default().trim()
        );
    }
    Ok(())
}

/// True for an ELF file without a program interpreter (`PT_INTERP`): the kernel runs it
/// without a dynamic loader.
fn is_static(elf: &[u8]) -> Result<bool> {
    ensure!(
        elf.get(..4) == Some(b"\x7fELF".as_slice()) && elf.get(4) == Some(&2),
        "not a 64-bit ELF file"
    );
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let phoff = usize::try_from(u64_at(0x20).context("truncated ELF header")?)?;
    let entry = usize::from(u16_at(0x36).context("truncated ELF header")?);
    let count = usize::from(u16_at(0x38).context("truncated ELF header")?);
    const PT_INTERP: u32 = 3;
    for i in 0..count {
        let kind = u32_at(phoff + i * entry).context("truncated program headers")?;
        if kind == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or_default(),
            _ => 0,
        })
        .sum()
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
