//! The demo in-process, as CI runs it: a fresh stack of the repository's manifest and real
//! functions on the emulators, the scenario over real HTTP, every check green.

use devstack::{Registry, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_end_to_end() {
    let mut options = StackOptions::new(Registry::standard());
    options.project = testkit::project_id();
    options.base_port = 0;
    let report = devstack::cli::demo_on_new_stack(options).await.unwrap();
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert!(report.checks.len() >= 11, "every step ran: {}", report.render());
}
