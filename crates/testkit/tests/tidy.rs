//! Tidy checks over the whole workspace (rust-analyzer style): every Rust file starts with a
//! `//!` doc comment, every member opts into the workspace lints, function binaries stay thin,
//! `domain` reads no clock and draws no randomness, only `store` drives the idempotency ledger,
//! only `store::paths` spells a document path, and nothing cites a document the repository does
//! not hold.

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

/// Non-test source of `dir`: every `.rs` file under `src/`, cut at its first `#[cfg(test)]`
/// (test modules sit at the end of a file in this workspace).
fn production_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut rs = Vec::new();
    files(&dir.join("src"), "rs", &mut rs);
    rs.into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            (file, code)
        })
        .collect()
}

/// The code of a file without its comments (line comments only; the workspace uses no block
/// comments), so a doc comment may name what the code must not do.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `file: word` for every banned word the code (comments aside) of `sources` uses.
fn banned_in(sources: impl IntoIterator<Item = (PathBuf, String)>, banned: &[&str]) -> Vec<String> {
    let mut offenders = Vec::new();
    for (file, text) in sources {
        let code = code_only(&text);
        for word in banned.iter().filter(|word| code.contains(*word)) {
            offenders.push(format!("{}: {word}", file.display()));
        }
    }
    offenders
}

#[test]
fn domain_reads_no_clock_and_draws_no_randomness() {
    let root = workspace_root();
    let banned = [
        "Utc::now",
        "Local::now",
        "SystemTime::now",
        "Instant::now",
        "rand::",
        "thread_rng",
        "OsRng",
        "tokio::",
        "std::fs",
        "std::net",
    ];
    let offenders = banned_in(production_sources(&root.join("crates/domain")), &banned);
    assert!(
        offenders.is_empty(),
        "domain is pure (callers pass `now` and random draws in):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn only_store_drives_the_idempotency_ledger() {
    let banned = [".claim(", "Claim::Fresh", "LeaseToken", ".release(&token"];
    let sources = members()
        .into_iter()
        .filter(|member| !member.ends_with("store") && !member.ends_with("testkit"))
        .flat_map(|member| production_sources(&member));
    let offenders = banned_in(sources, &banned);
    assert!(
        offenders.is_empty(),
        "run work once through store::ledger's one entry point instead of claiming by hand:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn only_store_paths_spells_a_document_path() {
    let root = workspace_root();
    let paths_rs = std::fs::read_to_string(root.join("crates/store/src/paths.rs")).unwrap();
    // The collection names `paths.rs` declares: `pub const X: &str = "name";`.
    let names: Vec<String> = paths_rs
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("pub const ")?;
            let (_, value) = rest.split_once("&str = \"")?;
            Some(value.trim_end_matches("\";").to_owned())
        })
        .collect();
    assert!(names.len() > 10, "found too few collection names in paths.rs: {names:?}");
    let mut offenders = Vec::new();
    // devstack and testkit act as clients and operators (their strings name documents in
    // reports); the rule holds for the code that runs in production.
    for member in members() {
        if member.ends_with("devstack") || member.ends_with("testkit") {
            continue;
        }
        for (file, text) in production_sources(&member) {
            if file.ends_with("store/src/paths.rs") {
                continue;
            }
            let code = code_only(&text);
            for name in &names {
                // A string literal that starts a path with a collection: "orders/..." or
                // format!("orders/{id}").
                if code.contains(&format!("\"{name}/")) {
                    offenders.push(format!("{}: \"{name}/...\"", file.display()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "build document paths with store::paths:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn nothing_cites_a_document_outside_the_repository() {
    let root = workspace_root();
    let mut texts = Vec::new();
    for ext in ["rs", "md", "toml", "tf", "sh", "yaml", "json", "rules"] {
        files(&root, ext, &mut texts);
    }
    let cited = |line: &str| {
        let lower = line.to_lowercase();
        let seed = lower.match_indices("seed ").any(|(at, _)| {
            lower[at + 5..].chars().take(3).filter(char::is_ascii_digit).count() == 3
        });
        seed || lower.contains("seeds/")
            || lower.contains("contracts.md")
            || lower.contains("contracts-wave2.md")
            || lower.contains("design.md")
            || lower.contains("style.md")
    };
    let mut offenders = Vec::new();
    for file in texts {
        if file.ends_with("crates/testkit/tests/tidy.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for (n, line) in text.lines().enumerate() {
            if cited(line) {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "state the fact instead of citing a document the repository does not hold:\n{}",
        offenders.join("\n")
    );
}
