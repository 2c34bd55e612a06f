//! Build script: tells the tests whether they are built by root, so the
//! tests that build local clusters or install Debian packages show up in
//! cargo's summary as `ignored` (with the reason) for other users, instead of
//! passing without having run.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(faultline_root)");
    // Only this file decides; without it cargo would rerun the script (and
    // rebuild the crate) whenever any file of the package changes.
    println!("cargo::rerun-if-changed=build.rs");
    if effective_uid() == Some(0) {
        println!("cargo::rustc-cfg=faultline_root");
    }
}

/// The effective user id of this process, from the `Uid:` line of
/// /proc/self/status (real, effective, saved, filesystem): no libc needed.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
