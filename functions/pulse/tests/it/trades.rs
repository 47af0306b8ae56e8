//! Shadow trades from a scripted candle series: entry, minute P&L, barrier exits with exact
//! P&L, the ledger appended once, retried and overlapping minutes, safe mode, disabled and
//! label strategies.

use domain::pulse::{ExitReason, Side, TradeStatus};

use crate::{Harness, bar, eur_usd_m1, labelled, strategy, t, task};

#[tokio::test]
async fn a_strategy_opens_marks_and_closes_a_trade_with_exact_pnl_and_one_ledger_entry() {
    let h = Harness::start(&[]).await;
    let stream = eur_usd_m1();
    h.seed_strategy("t1", "s1", &strategy(&["alice"])).await;
    h.seed_status("alice", false, "safe").await;
    // Minute 1: candle 0 closed at 100 with a scaled return of 2 (> 1.5): enter long.
    h.seed_bar(&stream, &bar(0, 100.2, 99.8, 100.0, 2.0)).await;
    h.deliver("m1", &task(1, &["s1"], 1)).await;
    let opened = h.trade("alice", "s1", t(0)).await.expect("trade opened");
    assert_eq!((opened.side, opened.status, opened.qty), (Side::Long, TradeStatus::Open, 10.0));
    assert_eq!((opened.take_profit_price, opened.stop_loss_price, opened.pnl), (102.0, 99.0, 0.0));
    let signal = h.signal("alice", &format!("{}-open", opened.id())).await.expect("open signal");
    assert_eq!(
        (signal["action"].as_str(), signal["execution"].as_str()),
        (Some("open_long"), Some("shadow"))
    );

    // Minute 2: candle 1 closes at 101 within the barriers: marked, P&L 10.
    h.seed_bar(&stream, &bar(1, 101.0, 99.5, 101.0, 0.5)).await;
    h.deliver("m2", &task(2, &["s1"], 1)).await;
    let marked = h.trade("alice", "s1", t(0)).await.unwrap();
    assert_eq!(
        (marked.status, marked.pnl, marked.candles_held, marked.mark_ts),
        (TradeStatus::Open, 10.0, 1, t(1))
    );
    assert!(
        h.ledger("t1", "alice", "s1", t(0)).await.is_none(),
        "an open trade is not in the ledger"
    );

    // Minute 3: candle 2 touches 102.5 (profit-take 102): closed at 102, P&L exactly 20.
    h.seed_bar(&stream, &bar(2, 102.5, 100.5, 102.2, 0.4)).await;
    h.deliver("m3", &task(3, &["s1"], 1)).await;
    let closed = h.trade("alice", "s1", t(0)).await.unwrap();
    assert_eq!(
        (closed.status, closed.exit_reason, closed.mark_price, closed.pnl),
        (TradeStatus::Closed, Some(ExitReason::TakeProfit), 102.0, 20.0)
    );
    let entry = h.ledger("t1", "alice", "s1", t(0)).await.expect("ledger entry");
    assert_eq!(
        (entry["pnl"].as_f64(), entry["exit_price"].as_f64(), entry["price"].as_f64()),
        (Some(20.0), Some(102.0), Some(100.0))
    );
    assert_eq!(entry["uid"], "alice");

    // The same minute again under another message id (a second pulse), and a later minute
    // without a signal: nothing changes and nothing new opens.
    h.deliver("m3-again", &task(3, &["s1"], 1)).await;
    h.deliver("m4", &task(4, &["s1"], 1)).await;
    assert_eq!(h.trade("alice", "s1", t(0)).await.unwrap(), closed);
    assert_eq!(h.ledger("t1", "alice", "s1", t(0)).await.unwrap(), entry);
    for m in 1..=2 {
        assert!(h.trade("alice", "s1", t(m)).await.is_none(), "no trade entered on candle {m}");
    }
}

#[tokio::test]
async fn a_stop_loss_and_a_vertical_barrier_close_with_exact_pnl_and_a_gap_is_walked_in_order() {
    let h = Harness::start(&[]).await;
    let stream = eur_usd_m1();
    h.seed_strategy("t1", "s1", &strategy(&["bob"])).await;
    // A short at 100 (scaled return -2): profit-take 98, stop-loss 101.
    h.seed_bar(&stream, &bar(0, 100.1, 99.9, 100.0, -2.0)).await;
    h.deliver("m1", &task(1, &["s1"], 1)).await;
    let short = h.trade("bob", "s1", t(0)).await.unwrap();
    assert_eq!(
        (short.side, short.take_profit_price, short.stop_loss_price),
        (Side::Short, 98.0, 101.0)
    );
    // Three candles arrive while the pulse is away; the second touches the stop-loss.
    h.seed_bar(&stream, &bar(1, 100.5, 99.5, 100.2, 0.1)).await;
    h.seed_bar(&stream, &bar(2, 101.4, 99.6, 100.9, 0.1)).await;
    h.seed_bar(&stream, &bar(3, 100.0, 97.0, 97.5, 0.1)).await;
    h.deliver("m4", &task(4, &["s1"], 1)).await;
    let closed = h.trade("bob", "s1", t(0)).await.unwrap();
    assert_eq!(
        (closed.exit_reason, closed.mark_ts, closed.mark_price, closed.pnl),
        (Some(ExitReason::StopLoss), t(2), 101.0, -10.0)
    );
    assert_eq!(h.ledger("t1", "bob", "s1", t(0)).await.unwrap()["pnl"].as_f64(), Some(-10.0));

    // A long that neither barrier stops closes at the fifth candle's close.
    h.seed_bar(&stream, &bar(4, 100.1, 99.9, 100.0, 2.0)).await;
    h.deliver("m5", &task(5, &["s1"], 1)).await;
    assert!(h.trade("bob", "s1", t(4)).await.is_some(), "entered long on candle 4");
    for m in 5..=9 {
        h.seed_bar(&stream, &bar(m, 100.5, 99.5, 100.0 + (m - 4) as f64 / 10.0, 0.0)).await;
    }
    h.deliver("m10", &task(10, &["s1"], 1)).await;
    let vertical = h.trade("bob", "s1", t(4)).await.unwrap();
    assert_eq!(
        (vertical.exit_reason, vertical.candles_held, vertical.mark_ts),
        (Some(ExitReason::Vertical), 5, t(9))
    );
    assert!((vertical.pnl - 5.0).abs() < 1e-9, "{}", vertical.pnl);
}

#[tokio::test]
async fn overlapping_runs_of_a_minute_open_and_close_each_trade_once() {
    let h = Harness::start(&[]).await;
    let stream = eur_usd_m1();
    let users: Vec<String> = (0..12).map(|i| format!("u{i:02}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    h.seed_strategy("t1", "s1", &strategy(&refs)).await;
    h.seed_bar(&stream, &bar(0, 100.2, 99.8, 100.0, 2.0)).await;
    // Two pulses of the same minute deliver their tasks at the same time.
    let minute1 = task(1, &["s1"], 12);
    let (a, b) = tokio::join!(h.deliver("a-1", &minute1), h.deliver("b-1", &minute1));
    assert_eq!((a, b), (204, 204));
    for u in &users {
        let trade = h.trade(u, "s1", t(0)).await.expect("one trade per user");
        assert_eq!((trade.status, trade.pnl), (TradeStatus::Open, 0.0));
    }
    h.seed_bar(&stream, &bar(1, 100.0, 98.5, 99.0, 0.0)).await;
    let minute2 = task(2, &["s1"], 12);
    let (a, b) = tokio::join!(h.deliver("a-2", &minute2), h.deliver("b-2", &minute2));
    assert_eq!((a, b), (204, 204));
    for u in &users {
        let trade = h.trade(u, "s1", t(0)).await.unwrap();
        assert_eq!(
            (trade.status, trade.exit_reason, trade.pnl),
            (TradeStatus::Closed, Some(ExitReason::StopLoss), -10.0)
        );
        assert_eq!(trade.candles_held, 1, "the candle was walked once");
        let entry = h.ledger("t1", u, "s1", t(0)).await.expect("each user's trade in the ledger");
        assert_eq!((entry["uid"].as_str(), entry["pnl"].as_f64()), (Some(u.as_str()), Some(-10.0)));
    }
    // The redelivery of a task already done is answered from the ledger without running.
    assert_eq!(h.deliver("a-2", &task(2, &["s1"], 12)).await, 204);
}

#[tokio::test]
async fn safe_mode_books_shadow_and_live_is_only_requested() {
    let h = Harness::start(&[]).await;
    let stream = eur_usd_m1();
    h.seed_strategy("t1", "s1", &strategy(&["safe", "live", "none"])).await;
    h.seed_status("safe", false, "safe").await;
    h.seed_status("live", true, "live").await;
    h.seed_bar(&stream, &bar(0, 100.2, 99.8, 100.0, 2.0)).await;
    h.deliver("m1", &task(1, &["s1"], 3)).await;
    for (uid, execution) in [("safe", "shadow"), ("live", "live_requested"), ("none", "shadow")] {
        let trade = h.trade(uid, "s1", t(0)).await.expect("a shadow trade in every mode");
        let signal = h.signal(uid, &format!("{}-open", trade.id())).await.unwrap();
        assert_eq!(signal["execution"].as_str(), Some(execution), "{uid}");
    }
}

#[tokio::test]
async fn a_disabled_strategy_closes_what_is_open_and_opens_nothing_and_labels_enter() {
    let h = Harness::start(&[]).await;
    let stream = eur_usd_m1();
    h.seed_strategy("t1", "s1", &strategy(&["carol"])).await;
    h.seed_bar(&stream, &bar(0, 100.2, 99.8, 100.0, 2.0)).await;
    h.deliver("m1", &task(1, &["s1"], 1)).await;
    let mut off = strategy(&["carol"]);
    off.enabled = false;
    h.seed_strategy("t1", "s1", &off).await;
    h.seed_bar(&stream, &bar(1, 102.5, 100.0, 102.0, 3.0)).await;
    h.deliver("m2", &task(2, &["s1"], 1)).await;
    assert_eq!(h.trade("carol", "s1", t(0)).await.unwrap().status, TradeStatus::Closed);
    assert!(h.trade("carol", "s1", t(1)).await.is_none(), "a disabled strategy opens nothing");

    // A label strategy enters in the direction of the newest resolved label.
    let mut by_label = strategy(&["dave"]);
    by_label.entry = domain::pulse::EntrySignal::Label;
    h.seed_strategy("t1", "s2", &by_label).await;
    h.seed_bar(&stream, &labelled(bar(2, 102.1, 101.9, 102.0, 0.0), -1)).await;
    h.seed_bar(&stream, &bar(3, 102.1, 101.9, 102.0, 0.0)).await;
    h.deliver("m4", &task(4, &["s2"], 1)).await;
    let trade = h.trade("dave", "s2", t(3)).await.expect("entered on the newest candle");
    assert_eq!(trade.side, Side::Short);
}
