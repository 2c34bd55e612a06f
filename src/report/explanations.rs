//! Writes the explanation files a checker offers (the `txn` checker's
//! `<anomaly>.txt` and cycle graphs `<anomaly>/<i>.dot`), and draws each
//! dot graph as SVG when Graphviz's `dot` is installed. The checkers make
//! the content; only this module touches the disk or runs `dot`.

use crate::check::registry::ExplanationFile;
use std::path::{Path, PathBuf};

/// Writes `files` under `dir` (creating folders), plus `<i>.svg` beside
/// each `<i>.dot` when `dot` runs. Returns the files written.
pub fn write_explanations(files: &[ExplanationFile], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut have_dot = true;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.text)?;
        written.push(path.clone());
        if !have_dot || path.extension().map_or(true, |e| e != "dot") {
            continue;
        }
        let svg = path.with_extension("svg");
        // A missing Graphviz is normal: the dot files are the output.
        match std::process::Command::new("dot")
            .arg("-Tsvg")
            .arg(&path)
            .arg("-o")
            .arg(&svg)
            .status()
        {
            Ok(s) if s.success() => written.push(svg),
            Ok(_) => {}
            Err(_) => have_dot = false,
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_in_their_folders_and_dot_graphs_are_drawn_when_dot_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = vec![
            ExplanationFile {
                path: "G1c.txt".into(),
                text: "Let:\n".into(),
            },
            ExplanationFile {
                path: "G1c/0.dot".into(),
                text: "digraph \"G1c\" { T1 -> T2 }\n".into(),
            },
        ];
        let written = write_explanations(&files, dir.path()).expect("writes");
        let txt = std::fs::read_to_string(dir.path().join("G1c.txt")).expect("txt");
        assert_eq!(txt, "Let:\n");
        let dot = std::fs::read_to_string(dir.path().join("G1c/0.dot")).expect("dot");
        assert!(dot.starts_with("digraph"), "{dot}");
        let dot_runs = std::process::Command::new("dot").arg("-V").output().is_ok();
        assert_eq!(written.len(), if dot_runs { 3 } else { 2 }, "{written:?}");
        assert_eq!(dir.path().join("G1c/0.svg").exists(), dot_runs);
    }
}
