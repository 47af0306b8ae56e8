//! Tidy checks over the whole workspace (rust-analyzer style): every Rust file starts with a
//! `//!` doc comment, every member opts into the workspace lints, and function binaries stay
//! thin.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "node_modules" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn members() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut out = Vec::new();
    for group in ["crates", "functions"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else { continue };
        for entry in entries.flatten() {
            if entry.path().join("Cargo.toml").exists() {
                out.push(entry.path());
            }
        }
    }
    assert!(!out.is_empty(), "found no workspace members under {}", root.display());
    out
}

#[test]
fn every_rust_file_starts_with_a_module_doc_comment() {
    let mut offenders = Vec::new();
    for member in members() {
        let mut rs = Vec::new();
        files(&member, "rs", &mut rs);
        for file in rs {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                offenders.push(file.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these files need a `//!` doc comment first:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_member_uses_the_workspace_lints() {
    let mut offenders = Vec::new();
    for member in members() {
        let manifest = std::fs::read_to_string(member.join("Cargo.toml")).unwrap();
        if !manifest.contains("[lints]\nworkspace = true") {
            offenders.push(member.display().to_string());
        }
    }
    assert!(offenders.is_empty(), "add `[lints]\\nworkspace = true` to:\n{}", offenders.join("\n"));
}

#[test]
fn function_binaries_stay_thin() {
    let root = workspace_root();
    let Ok(entries) = std::fs::read_dir(root.join("functions")) else { return };
    for entry in entries.flatten() {
        let main = entry.path().join("src/main.rs");
        if let Ok(text) = std::fs::read_to_string(&main) {
            let lines = text.lines().count();
            assert!(
                lines <= 40,
                "{} has {lines} lines: keep main.rs to config, state, serve",
                main.display()
            );
        }
    }
}
