//! `xenstore-rs`: the `xenstore-read/-write/-ls/-rm/-chmod/-exists/-list/-watch` tools in one
//! binary; link or copy it under those names, or call `xenstore-rs read ...`.

fn main() {
    std::process::exit(xenstore::cli::main(std::env::args().collect()));
}
