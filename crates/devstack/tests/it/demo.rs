//! The demo in-process, as CI runs it: a fresh stack of the repository's manifest and real
//! functions (and the fake payment provider) on the emulators, the scenario over real HTTP from
//! sign-up through follow, post, feed, like, reserve, pay, the abandoned reservation's
//! cleanup, the order-paid push at the fake FCM and in the inbox, market data, the trading
//! pulse (its signals notified) and a misspelt search for a listed product, every check green.

use devstack::{Registry, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_end_to_end() {
    let mut options = StackOptions::new(Registry::standard());
    options.project = testkit::project_id();
    options.base_port = 0;
    let report = devstack::cli::demo_on_new_stack(options).await.unwrap();
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.checks.len(), 50, "every step ran: {}", report.render());
    for step in [
        "all seven documents exist",
        "followVendor",
        "Eventarc delivers the post to feed-fanout",
        "getFeed returns the post",
        "likePost twice counts one like",
        "reserveInventory holds",
        "initiatePayment",
        "a forged Pesapal IPN",
        "payment-webhook accepts a signed payment_intent.succeeded",
        "order paid, reservation committed",
        "leaves a reservation whose hold runs",
        "returns it to stock",
        "searchProducts with a typo finds it",
        "suggest completes its title",
        "registerDevice stores the user's FCM token",
        "push at the fake FCM",
        "the entry is in the in-app inbox",
        "pulse opens a shadow trade on the jump",
        "a candle inside the barriers moves the trade's P&L",
        "the ledger holds it",
        "the trade's open and close in the inbox and pushed",
        "a follower in the vendor's inbox",
    ] {
        assert!(
            report.checks.iter().any(|c| c.step.contains(step)),
            "no check `{step}`: {}",
            report.render()
        );
    }
}
