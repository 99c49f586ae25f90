//! Prints what the builder sees in a kernel image and how long parsing took:
//! `cargo run --release -p domain-builder --example inspect-kernel -- /boot/vmlinuz-...`.

use std::time::Instant;

use domain_builder::KernelImage;

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: inspect-kernel KERNEL");
        return std::process::ExitCode::FAILURE;
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("{}: {err}", path.to_string_lossy());
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match KernelImage::parse(&bytes, 512 << 20) {
        Ok(kernel) => {
            println!("parse_ms={}", started.elapsed().as_millis());
            println!(
                "compression={:?} elf_bytes={}",
                kernel.compression,
                kernel.elf_bytes().map_or(0, <[u8]>::len)
            );
            println!("{:#x?}", kernel.params);
            for segment in &kernel.segments {
                println!("{segment:#x?}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}: {err}", path.to_string_lossy());
            std::process::ExitCode::FAILURE
        }
    }
}
