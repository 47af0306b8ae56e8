//! Dead letters land in `dead_letters/{id}`, once per id.

use domain::dead_letter::DeadLetter;
use store::DeadLetters;

fn letter(id: &str, reason: &str) -> DeadLetter {
    DeadLetter {
        id: id.to_owned(),
        source: "onboarding POST /pubsub/user-signups".to_owned(),
        event_id: Some(id.to_owned()),
        reason: reason.to_owned(),
        detail: "tenant not found".to_owned(),
        recorded_at: "2025-01-01T00:00:00Z".to_owned(),
        suspected_forgery: false,
    }
}

#[tokio::test]
async fn dead_letters_are_recorded_idempotently() {
    let db = crate::fresh_db().await;
    let sink = DeadLetters::new(&db);
    let first = letter("1234567890", "bad payload");
    sink.record(&first).await.unwrap();
    assert_eq!(sink.get("1234567890").await.unwrap(), Some(first.clone()));

    // Redelivery of the same event: same document, overwritten, never a second one.
    let again = letter("1234567890", "bad payload (again)");
    sink.record(&again).await.unwrap();
    assert_eq!(sink.get("1234567890").await.unwrap(), Some(again));
    let firestore = db.firestore().await.unwrap();
    let all: Vec<DeadLetter> =
        firestore.fluent().select().from("dead_letters").obj().query().await.unwrap();
    assert_eq!(all.len(), 1);

    // An id that cannot name a document is hashed, deterministically.
    let odd = letter("projects/p/events/e/1", "odd id");
    sink.record(&odd).await.unwrap();
    assert_eq!(sink.get("projects/p/events/e/1").await.unwrap(), Some(odd));
}

#[tokio::test]
async fn the_store_is_runtime_s_dead_letter_sink() {
    let db = crate::fresh_db().await;
    let sink: std::sync::Arc<dyn domain::dead_letter::DeadLetterSink> =
        std::sync::Arc::new(DeadLetters::new(&db));
    let dl = letter("cloudevent-77", "unknown event type");
    sink.record(dl.clone()).await.unwrap();
    sink.record(dl.clone()).await.unwrap();
    assert_eq!(DeadLetters::new(&db).get("cloudevent-77").await.unwrap(), Some(dl));
}

#[tokio::test]
async fn recording_while_firestore_is_down_fails_so_the_event_is_redelivered() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = store::DbConfig::emulator(testkit::project_id(), format!("127.0.0.1:{port}"));
    config.connect_timeout = std::time::Duration::from_secs(1);
    let sink = DeadLetters::new(&store::Db::new(config));
    let error = sink.record(&letter("e1", "x")).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
}
