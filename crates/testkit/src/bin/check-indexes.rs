//! `check-indexes <recorded shapes dir> <firestore.indexes.json>`: every query shape `store`
//! sent during the test suite must be served by an index production Firestore has
//! (`testkit::indexes`). Prints the index to add for each one that is not, and the composite
//! indexes nothing queried; exits 1 when a query has no serving index or nothing was recorded.
//! `scripts/test.sh` runs it after the test suite.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line report

use std::path::PathBuf;
use std::process::ExitCode;

use testkit::indexes::{IndexFile, Served, check, describe, read_shapes};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, file] = args.as_slice() else {
        eprintln!("usage: check-indexes <recorded shapes dir> <firestore.indexes.json>");
        return ExitCode::from(2);
    };
    let shapes = match read_shapes(&PathBuf::from(dir)) {
        Ok(shapes) => shapes,
        Err(error) => {
            eprintln!("cannot read the recorded query shapes in {dir}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let indexes = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| IndexFile::parse(&t).map_err(|e| e.to_string()))
    {
        Ok(indexes) => indexes,
        Err(error) => {
            eprintln!("cannot read {file}: {error}");
            return ExitCode::FAILURE;
        }
    };
    if shapes.is_empty() {
        eprintln!(
            "no query shapes were recorded in {dir}: the suite did not run with HEARTH_QUERY_LOG_DIR"
        );
        return ExitCode::FAILURE;
    }
    let report = check(&indexes, &shapes);
    for (shape, served) in &report.served {
        let how = match served {
            Served::ByName => "by name".to_owned(),
            Served::SingleField => "single-field indexes".to_owned(),
            Served::Composite(i) => format!("composite index #{i}"),
        };
        println!("  ok       {}: {how}", describe(shape));
    }
    for (shape, missing) in &report.missing {
        println!(
            "  MISSING  {}\n           {}\n           add: {}",
            describe(shape),
            missing.why,
            missing.add
        );
    }
    for index in &report.unused {
        let fields: Vec<String> = index.fields.iter().map(|f| f.field_path.clone()).collect();
        println!(
            "  unused   {} {} [{}]: no query of the suite uses it (client queries under the rules are not recorded)",
            index.collection_group,
            index.query_scope,
            fields.join(", ")
        );
    }
    println!(
        "index coverage: {} query shapes served, {} without an index, {} composite indexes unused",
        report.served.len(),
        report.missing.len(),
        report.unused.len()
    );
    if report.missing.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
