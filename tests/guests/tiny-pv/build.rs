//! Builds the tiny-pv guest kernel with the host gcc and GNU ld.
//!
//! Outputs:
//! - `$OUT_DIR/tiny-pv.elf`, exposed to the library as `TINY_PV_ELF_PATH`;
//! - a copy at `<cargo target dir>/guests/tiny-pv.elf` (`TINY_PV_ELF_STABLE_PATH`),
//!   the path the lab scenarios and other tools use;
//! - `$OUT_DIR/host/libtinypv_host.a`: the guest's pure helpers compiled for the
//!   host, linked into this crate's integration tests only.

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_DIR: &str = "guest";
const GUEST_SOURCES: &[&str] = &["head.S", "main.c", "tinypv.c", "rt.c"];
const GUEST_HEADERS: &[&str] = &["tinypv.h", "xen_abi.h"];
const LINKER_SCRIPT: &str = "link.ld";
/// The helpers that need no hypercalls, tested on the host through FFI.
const HOST_HELPER_SOURCE: &str = "tinypv.c";

/// Flags for freestanding x86_64 PV kernel code linked in the top 2 GiB.
const GUEST_CFLAGS: &[&str] = &[
    "-std=gnu11",
    "-m64",
    "-Os",
    "-g0",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-pic",
    "-fno-pie",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-fno-tree-loop-distribute-patterns",
    "-Wall",
    "-Wextra",
];

#[derive(Debug)]
enum BuildError {
    Io(String, io::Error),
    Tool(String),
    Layout(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Io(what, err) => write!(f, "{what}: {err}"),
            BuildError::Tool(msg) | BuildError::Layout(msg) => f.write_str(msg),
        }
    }
}

fn main() {
    if let Err(err) = build() {
        eprintln!("error: building the tiny-pv guest failed: {err}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), BuildError> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let guest_dir = manifest_dir.join(GUEST_DIR);
    let compiler = env::var("TINYPV_CC").unwrap_or_else(|_| "gcc".to_owned());
    let archiver = env::var("TINYPV_AR").unwrap_or_else(|_| "ar".to_owned());
    println!("cargo:rerun-if-env-changed=TINYPV_CC");
    println!("cargo:rerun-if-env-changed=TINYPV_AR");
    for file in GUEST_SOURCES
        .iter()
        .chain(GUEST_HEADERS)
        .chain(&[LINKER_SCRIPT])
    {
        println!("cargo:rerun-if-changed={GUEST_DIR}/{file}");
    }

    // The guest kernel.
    let object_dir = out_dir.join("guest");
    create_dir(&object_dir)?;
    let mut objects = Vec::new();
    for source in GUEST_SOURCES {
        let object = object_dir.join(format!("{source}.o"));
        let mut cmd = Command::new(&compiler);
        cmd.args(GUEST_CFLAGS)
            .arg("-I")
            .arg(&guest_dir)
            .arg("-c")
            .arg(guest_dir.join(source))
            .arg("-o")
            .arg(&object);
        run(&mut cmd)?;
        objects.push(object);
    }
    let elf = out_dir.join("tiny-pv.elf");
    let mut link = Command::new(&compiler);
    link.args(["-nostdlib", "-static", "-no-pie"])
        .arg(format!(
            "-Wl,-T,{}",
            guest_dir.join(LINKER_SCRIPT).display()
        ))
        .args([
            "-Wl,--build-id=none",
            // No page alignment of file offsets: Xen's loader copies from p_offset.
            "-Wl,-n",
            "-Wl,-z,max-page-size=4096",
            "-Wl,-z,noexecstack",
            "-Wl,--no-undefined",
        ])
        .args(&objects)
        .arg("-o")
        .arg(&elf);
    run(&mut link)?;

    let stable = stable_elf_path(&out_dir)?;
    publish(&elf, &stable)?;
    println!("cargo:rustc-env=TINY_PV_ELF_PATH={}", elf.display());
    println!(
        "cargo:rustc-env=TINY_PV_ELF_STABLE_PATH={}",
        stable.display()
    );

    // The pure helpers again, for the host, so tests can call them.
    let host_dir = out_dir.join("host");
    create_dir(&host_dir)?;
    let host_object = host_dir.join("tinypv.o");
    let mut cmd = Command::new(&compiler);
    cmd.args(["-std=gnu11", "-O2", "-fPIC", "-Wall", "-Wextra"])
        .arg("-I")
        .arg(&guest_dir)
        .arg("-c")
        .arg(guest_dir.join(HOST_HELPER_SOURCE))
        .arg("-o")
        .arg(&host_object);
    run(&mut cmd)?;
    let archive = host_dir.join("libtinypv_host.a");
    // `ar r` would keep members of an older archive; start afresh.
    remove_if_present(&archive)?;
    run(Command::new(&archiver)
        .arg("crs")
        .arg(&archive)
        .arg(&host_object))?;
    println!("cargo:rustc-link-arg-tests={}", archive.display());
    Ok(())
}

fn env_var(name: &str) -> Result<String, BuildError> {
    env::var(name).map_err(|_| BuildError::Tool(format!("cargo did not set {name}")))
}

fn create_dir(dir: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(dir).map_err(|e| BuildError::Io(format!("creating {}", dir.display()), e))
}

fn remove_if_present(path: &Path) -> Result<(), BuildError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(BuildError::Io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Runs a tool, passing its diagnostics on as cargo warnings.
fn run(cmd: &mut Command) -> Result<(), BuildError> {
    let shown = format!("{cmd:?}");
    let output = cmd
        .output()
        .map_err(|e| BuildError::Tool(format!("cannot run {shown}: {e} (is gcc installed?)")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(BuildError::Tool(format!(
            "{shown} failed ({}):\n{stderr}",
            output.status
        )));
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning=tiny-pv: {line}");
    }
    Ok(())
}

/// `<target dir>/guests/tiny-pv.elf`, where OUT_DIR is
/// `<target dir>[/<triple>]/<profile>/build/tiny-pv-<hash>/out`.
fn stable_elf_path(out_dir: &Path) -> Result<PathBuf, BuildError> {
    let layout_error = || {
        BuildError::Layout(format!(
            "cannot find the cargo target dir above OUT_DIR {}",
            out_dir.display()
        ))
    };
    let build_dir = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .ok_or_else(layout_error)?;
    let mut target_dir = build_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(layout_error)?;
    // Cross builds add a directory named after the target triple.
    if let (Ok(target), Ok(host)) = (env::var("TARGET"), env::var("HOST")) {
        if target != host
            && target_dir
                .file_name()
                .is_some_and(|name| name == target.as_str())
        {
            target_dir = target_dir.parent().ok_or_else(layout_error)?;
        }
    }
    Ok(target_dir.join("guests").join("tiny-pv.elf"))
}

/// Copies the ELF to its stable path atomically: debug and release builds may race.
fn publish(elf: &Path, stable: &Path) -> Result<(), BuildError> {
    let dir = stable
        .parent()
        .ok_or_else(|| BuildError::Layout(format!("{} has no parent", stable.display())))?;
    create_dir(dir)?;
    let staging = dir.join(format!(".tiny-pv.elf.{}", std::process::id()));
    fs::copy(elf, &staging).map_err(|e| {
        BuildError::Io(
            format!("copying {} to {}", elf.display(), staging.display()),
            e,
        )
    })?;
    fs::rename(&staging, stable).map_err(|e| {
        BuildError::Io(
            format!("renaming {} to {}", staging.display(), stable.display()),
            e,
        )
    })
}
