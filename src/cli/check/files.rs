//! The files of `faultline check`: finding history files in directories,
//! their folders under `--out`, and the `--expect` table of verdicts.

use crate::cli::{EXIT_INVALID, EXIT_VALID};
use crate::history;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Expands directories into the history files in them (sorted); files in
/// directories whose content is no known format are skipped and counted.
pub(super) fn collect(paths: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, usize)> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if !meta.is_dir() {
            files.push(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot list {}", dir.display()))?;
            for e in entries {
                let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
                let path = e.path();
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if !is_document(&path) && looks_like_history(&path) {
                    found.push(path);
                } else {
                    skipped += 1;
                }
            }
        }
        found.sort();
        files.extend(found);
    }
    Ok((files, skipped))
}

/// Files that sit beside histories but are never one (READMEs, verdict
/// tables, reports).
fn is_document(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        ext.as_str(),
        "md" | "tsv" | "csv" | "html" | "svg" | "png" | "toml" | "json"
    )
}

/// True for empty files and files whose first 64 KiB detect as a format.
fn looks_like_history(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = Vec::new();
    let Ok(f) = std::fs::File::open(path) else {
        return true;
    };
    if f.take(64 << 10).read_to_end(&mut buf).is_err() {
        return true;
    }
    let text = String::from_utf8_lossy(&buf);
    text.trim().is_empty() || history::read::detect(&text).is_some()
}

/// A file's name without its extension: its folder under `--out`.
pub(super) fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "history".to_string())
}

/// Compares each file's verdict (`valid`, `invalid`, `unknown` or `error`)
/// with the TSV of expected verdicts: exit 0 when all match, 1 otherwise.
pub(super) fn compare_expected(tsv: &Path, verdicts: &[(&Path, &str)]) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(tsv).with_context(|| format!("cannot read {}", tsv.display()))?;
    let base = tsv.parent().unwrap_or(Path::new("."));
    let mut expected: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('\t');
        let (Some(p), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!(
                "{}:{}: expected `path<TAB>valid|invalid|unknown`, found {line:?}",
                tsv.display(),
                i + 1
            );
        };
        if !matches!(v.trim(), "valid" | "invalid" | "unknown") {
            bail!(
                "{}:{}: expected valid, invalid or unknown, found {v:?}",
                tsv.display(),
                i + 1
            );
        }
        expected.insert(canonical(&base.join(p)), v.trim().to_string());
    }
    let mut matched = 0;
    let mut mismatches = Vec::new();
    for (path, want) in &expected {
        let got = verdicts
            .iter()
            .find(|(p, _)| canonical(p) == *path)
            .map(|(_, v)| v.to_string());
        match got {
            Some(g) if g == *want => matched += 1,
            Some(g) => mismatches.push(format!("{}: expected {want}, got {g}", path.display())),
            None => mismatches.push(format!(
                "{}: expected {want}, but it was not checked",
                path.display()
            )),
        }
    }
    for m in &mismatches {
        super::say!("MISMATCH {m}");
    }
    super::say!(
        "expected verdicts: {matched} of {} as expected ({})",
        expected.len(),
        tsv.display()
    );
    Ok(if mismatches.is_empty() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

/// The path made absolute, or as given when it cannot be.
pub(super) fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}
