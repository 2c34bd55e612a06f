//! Writes the explanation files a checker offers (the `txn` checker's
//! `<anomaly>.txt` and cycle graphs `<anomaly>/<i>.dot`), and draws each
//! dot graph as `<i>.svg` beside it ([`super::cycle_svg`], in Rust: no
//! Graphviz needed). The checkers make the content; only this module
//! touches the disk.

use crate::check::registry::ExplanationFile;
use std::path::{Path, PathBuf};

/// Writes `files` under `dir` (creating folders), plus `<i>.svg` beside
/// each `<i>.dot`. Returns the files written.
pub fn write_explanations(files: &[ExplanationFile], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.text)?;
        written.push(path.clone());
        if path.extension().is_some_and(|e| e == "dot") {
            if let Some(svg) = super::cycle_svg::draw(&f.text) {
                let svg_path = path.with_extension("svg");
                std::fs::write(&svg_path, svg)?;
                written.push(svg_path);
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_in_their_folders_and_dot_graphs_are_drawn_without_graphviz() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = vec![
            ExplanationFile {
                path: "G1c.txt".into(),
                text: "Let:\n".into(),
            },
            ExplanationFile {
                path: "G1c/0.dot".into(),
                text: "digraph \"G1c\" {\n  label=\"G1c\";\n  T1 [label=\"T1\\nappend x 1\"];\n  T2 [label=\"T2\\nr x [1]\"];\n  T1 -> T2 [label=\"wr x\", color=\"#1b8a3a\"];\n  T2 -> T1 [label=\"ww y\", color=\"#1f5fbf\"];\n}\n".into(),
            },
        ];
        let written = write_explanations(&files, dir.path()).expect("writes");
        let txt = std::fs::read_to_string(dir.path().join("G1c.txt")).expect("txt");
        assert_eq!(txt, "Let:\n");
        let dot = std::fs::read_to_string(dir.path().join("G1c/0.dot")).expect("dot");
        assert!(dot.starts_with("digraph"), "{dot}");
        assert_eq!(written.len(), 3, "{written:?}");
        let svg = std::fs::read_to_string(dir.path().join("G1c/0.svg")).expect("svg");
        for text in [">T1<", ">T2<", "append x 1", "r x [1]", ">wr x<", ">ww y<"] {
            assert!(svg.contains(text), "{text} missing: {svg}");
        }
    }
}
