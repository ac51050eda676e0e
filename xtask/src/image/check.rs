//! The checks of a built image, on its pushed OCI layout: user, entrypoint, size, static
//! binaries, and the loadtester's programs run from the image's files.

use super::*;

/// Checks `name`'s configuration and size, exports it and unpacks its layers; returns the
/// folder of its files.
pub(super) fn check(builder: &str, image: &Image, name: &str, staging: &Path) -> Result<PathBuf> {
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
pub(super) fn programs_run(root: &Path) -> Result<()> {
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
pub(super) fn is_static(elf: &[u8]) -> Result<bool> {
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

pub(super) fn dir_size(dir: &Path) -> u64 {
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
