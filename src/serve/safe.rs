//! Turning a path from a URL into a file below the results directory, and
//! refusing everything else: `..`, `.`, absolute paths, backslashes, NUL,
//! and symbolic links that lead outside. Links that stay inside (such as
//! `latest`) are followed.

use std::path::{Component, Path, PathBuf};

/// Why a requested path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path is malformed (`..`, absolute, ...): HTTP 400.
    BadPath(String),
    /// Nothing there, or it lies outside the results directory: HTTP 404
    /// (the two are not told apart, so as not to reveal what exists).
    NotFound,
}

/// The canonical path of `rel` (already percent-decoded, `/`-separated)
/// below `root` (canonical), or why not.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, Refusal> {
    check_relative(rel)?;
    let joined = root.join(rel.trim_end_matches('/'));
    let real = std::fs::canonicalize(&joined).map_err(|_| Refusal::NotFound)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(Refusal::NotFound)
    }
}

/// Refuses a relative path that is not a plain list of names.
pub fn check_relative(rel: &str) -> Result<(), Refusal> {
    if rel.starts_with('/') {
        return Err(Refusal::BadPath(format!("{rel:?} is absolute")));
    }
    if rel.contains(['\\', '\0']) {
        return Err(Refusal::BadPath(format!(
            "{rel:?} holds a backslash or NUL"
        )));
    }
    for part in rel.trim_end_matches('/').split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(Refusal::BadPath(format!(
                "{rel:?}: empty, '.' or '..' components are not allowed"
            )));
        }
    }
    for c in Path::new(rel).components() {
        if !matches!(c, Component::Normal(_)) {
            return Err(Refusal::BadPath(format!("{rel:?} is not a plain path")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_paths_are_refused_before_touching_the_disk() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "./a",
            "a\\b",
            "",
        ] {
            assert!(
                matches!(check_relative(bad), Err(Refusal::BadPath(_))),
                "{bad:?} passed"
            );
        }
        assert_eq!(
            check_relative("t/20261126T000000.000Z/nodes/n1/x.log"),
            Ok(())
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_are_followed_and_links_outside_refused() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "x").expect("write");
        let root = tempfile::tempdir().expect("tempdir");
        let root_real = std::fs::canonicalize(root.path()).expect("canonical");
        std::fs::create_dir_all(root_real.join("t/r1")).expect("mkdir");
        std::fs::write(root_real.join("t/r1/test.json"), "{}").expect("write");
        std::os::unix::fs::symlink("r1", root_real.join("t/latest")).expect("link");
        std::os::unix::fs::symlink(outside.path(), root_real.join("t/escape")).expect("link");
        assert_eq!(
            resolve(&root_real, "t/latest/test.json"),
            Ok(root_real.join("t/r1/test.json"))
        );
        assert_eq!(
            resolve(&root_real, "t/escape/secret"),
            Err(Refusal::NotFound)
        );
        assert_eq!(resolve(&root_real, "t/missing"), Err(Refusal::NotFound));
    }
}
