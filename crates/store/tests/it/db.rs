//! Lazy client construction: a `Db` on a dead port is created at once, fails its first
//! operation with a retryable error, and recovers once Firestore answers on that address.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use store::{Db, DbConfig, paths};
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
    n: i64,
}

#[tokio::test]
async fn creating_a_db_does_no_io_and_a_dead_firestore_is_a_retryable_error() {
    let emulator = testkit::emulators::firestore().await;
    // A port nobody listens on (yet).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead = format!("127.0.0.1:{port}");
    let mut config = DbConfig::emulator(testkit::project_id(), dead.clone());
    config.connect_timeout = Duration::from_secs(2);

    let started = Instant::now();
    let db = Db::new(config);
    assert!(started.elapsed() < Duration::from_millis(50), "Db::new must not connect");
    assert!(!db.is_connected());

    let path = paths::config("greeting").unwrap();
    let started = Instant::now();
    let error = db.get::<Note>(&path).await.expect_err("nothing listens there");
    assert!(error.is_retryable(), "a dead Firestore must be retryable: {error}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the connect timeout");
    assert!(!db.is_connected());

    // Firestore appears on that address: a forwarding proxy to the emulator.
    let listener = TcpListener::bind(&dead).await.unwrap();
    let upstream = emulator.to_owned();
    let proxy = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });

    // The same Db recovers: the failed connection attempt was not cached.
    let note = Note { text: "hello".to_owned(), n: 7 };
    db.set(&path, &note).await.expect("works once Firestore answers");
    assert!(db.is_connected());
    assert_eq!(db.get::<Note>(&path).await.unwrap(), Some(note));
    db.ready().await.unwrap();
    proxy.abort();
}

#[tokio::test]
async fn documents_round_trip_create_is_exclusive_and_delete_removes() {
    let db = crate::fresh_db().await;
    let path = paths::tenant_member("tenant-1", "uid-1").unwrap();
    assert_eq!(db.get::<Note>(&path).await.unwrap(), None);

    let first = Note { text: "first".to_owned(), n: 1 };
    db.create(&path, &first).await.unwrap();
    let error = db.create(&path, &Note { text: "second".to_owned(), n: 2 }).await.unwrap_err();
    assert_eq!(error.code(), Some(store::Code::AlreadyExists), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(db.get::<Note>(&path).await.unwrap(), Some(first));

    // The typed path is usable with the firestore crate's own API.
    let firestore = db.firestore().await.unwrap();
    let parent = path.parent_name(firestore.get_documents_path());
    let via_crate: Option<Note> = firestore
        .fluent()
        .select()
        .by_id_in(path.collection_id())
        .parent(parent)
        .obj()
        .one(path.id())
        .await
        .unwrap();
    assert_eq!(via_crate.map(|n| n.n), Some(1));

    db.delete(&path).await.unwrap();
    assert_eq!(db.get::<Note>(&path).await.unwrap(), None);
}

#[tokio::test]
async fn a_document_of_the_wrong_shape_is_a_permanent_decode_error() {
    let db = crate::fresh_db().await;
    let path = paths::product("p1").unwrap();
    db.set(&path, &serde_json::json!({ "text": 5 })).await.unwrap();
    let error = db.get::<Note>(&path).await.unwrap_err();
    assert!(matches!(error, store::Error::Decode { .. }), "{error}");
    assert!(!error.is_retryable());
}
