//! Hostile callers of market-stream, in one place: forged OIDC tokens on every authenticated
//! route (`POST /`, `POST /replay`, `GET /dead-letters`, `POST /jobs/stream-health`,
//! `GET /metrics/streams`); malformed and oversized bodies; a CloudEvent id reused with other
//! values (it must not overwrite what the first delivery stored); events about documents that
//! are not candles (another collection, a candle's subcollection); replays naming paths that are
//! not candles of a configured stream; a caller of another account.
//!
//! Covered elsewhere, not repeated here: duplicated deliveries and identical rewrites
//! (`event.rs`), out-of-order arrival (`event.rs`, `fixture.rs`), impossible, malformed and
//! unknown candles (`dead_letters.rs`), strangers on the job route (`health.rs`).

use domain::market::Granularity::M1;
use serde_json::json;
use testkit::{keys, tokens};

use crate::{
    AUDIENCE, EVENTARC_SA, Harness, OPERATOR_SA, candle, candle_event, minute, oidc, stream,
};

/// Tokens that must all be refused, each with what is wrong with it.
fn forged_tokens() -> Vec<(&'static str, String)> {
    let claims = || tokens::google_oidc_claims(AUDIENCE, OPERATOR_SA);
    let good = tokens::sign(&claims(), keys::primary());
    let mut expired = claims();
    expired["iat"] = json!(tokens::now() - 7200);
    expired["exp"] = json!(tokens::now() - 3600);
    vec![
        ("signed by a key not in the JWKS", tokens::sign(&claims(), keys::other())),
        ("tampered signature", tokens::tamper_signature(&good)),
        (
            "payload edited after signing",
            tokens::tamper_payload(&good, |c| c["email"] = json!("attacker@evil.example")),
        ),
        ("expired", tokens::sign(&expired, keys::primary())),
        ("unsigned (alg none)", tokens::unsigned(&claims())),
        (
            "HS256 keyed with the public key",
            tokens::hs256_with_public_key(&claims(), keys::primary()),
        ),
        (
            "another audience",
            tokens::sign(
                &tokens::google_oidc_claims("https://other.example/", OPERATOR_SA),
                keys::primary(),
            ),
        ),
        ("another account", oidc("stranger@evil.iam.gserviceaccount.com")),
        ("not a JWT", "garbage".to_owned()),
    ]
}

#[tokio::test]
async fn forged_tokens_are_refused_everywhere_and_change_nothing() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let event = candle_event(&h, "ce-1", &key, None, Some(&candle(minute(0), 1.08)));
    for (what, token) in forged_tokens() {
        assert_eq!(h.send_as(&event, Some(&token)).await.status(), 401, "POST /: {what}");
        let res = h
            .post_json(
                "/replay",
                &json!({"candle": "candles/EUR_USD/M1/2026-01-05T00:00:00Z"}),
                Some(&token),
            )
            .await;
        assert_eq!(res.status(), 401, "POST /replay: {what}");
        let res =
            h.app.client.get(h.app.url("/dead-letters")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 401, "GET /dead-letters: {what}");
        let res = h
            .app
            .client
            .post(h.app.url("/jobs/stream-health"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "POST /jobs/stream-health: {what}");
        let res = h
            .app
            .client
            .get(h.app.url("/metrics/streams"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 401 | 403), "GET /metrics/streams: {what}");
    }
    assert_eq!(h.send_as(&event, None).await.status(), 401, "no token");
    assert!(h.bars(&key).await.is_empty(), "no refused call wrote anything");
    // The operator may not read stream metrics (only the metrics readers may).
    let res = h
        .app
        .client
        .get(h.app.url("/metrics/streams"))
        .bearer_auth(oidc(OPERATOR_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // The genuine event still works (its id was not burnt by the refused ones).
    assert_eq!(h.send(&event).await.status(), 204);
    assert_eq!(h.bars(&key).await.len(), 1);
    let res = h
        .app
        .client
        .get(h.app.url("/metrics/streams"))
        .bearer_auth(oidc(EVENTARC_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_reused_event_id_with_other_values_does_not_overwrite_the_first() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    h.deliver(&key, &candle(minute(0), 1.08)).await;
    let first = h.bars(&key).await;
    // The same CloudEvent id as the delivery above, carrying other prices.
    let forged = candle_event(
        &h,
        "ce-EUR_USD_M1-2026-01-05T00:00:00Z",
        &key,
        None,
        Some(&candle(minute(0), 9.99)),
    );
    let res = h.send(&forged).await;
    assert_eq!(res.status(), 200, "dead-lettered as a conflict");
    assert_eq!(h.bars(&key).await, first);
    let letter = store::DeadLetters::new(&h.db)
        .get("market-stream-ce-EUR_USD_M1-2026-01-05T00:00:00Z")
        .await
        .unwrap();
    assert!(letter.expect("dead letter").reason.contains("reused"));
}

#[tokio::test]
async fn events_about_other_documents_and_bad_bodies_write_nothing() {
    let h = Harness::start(&[]).await;
    let key = stream("EUR_USD", M1);
    let mut elsewhere = candle_event(&h, "ce-users", &key, None, Some(&candle(minute(0), 1.08)));
    elsewhere.document = Some("users/u1".to_owned());
    elsewhere.subject = Some("documents/users/u1".to_owned());
    assert_eq!(h.send(&elsewhere).await.status(), 200);
    let mut nested = candle_event(&h, "ce-nested", &key, None, Some(&candle(minute(0), 1.08)));
    let deep = "candles/EUR_USD/M1/2026-01-05T00:00:00Z/notes/n1";
    nested.document = Some(deep.to_owned());
    nested.subject = Some(format!("documents/{deep}"));
    assert_eq!(h.send(&nested).await.status(), 200);
    // Garbage protobuf data in a well-formed CloudEvent.
    let res = h
        .app
        .client
        .post(h.app.url("/"))
        .bearer_auth(oidc(EVENTARC_SA))
        .header("ce-specversion", "1.0")
        .header("ce-id", "ce-garbage")
        .header("ce-source", "//firestore.googleapis.com/projects/p/databases/(default)")
        .header("ce-type", "google.cloud.firestore.document.v1.written")
        .header("content-type", "application/protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Oversized bodies are cut off by the push limit.
    let res = h
        .app
        .client
        .post(h.app.url("/"))
        .bearer_auth(oidc(EVENTARC_SA))
        .body(vec![b' '; 17 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(h.bars(&key).await.is_empty());

    // Replays of paths that are not candles of a configured stream, and malformed requests.
    for body in [
        json!({"candle": "users/u1"}),
        json!({"candle": "candles/EUR_USD/M1/../../users/u1"}),
        json!({"candle": "candles/BTC_USD/M1/2026-01-05T00:00:00Z"}),
        json!({"dead_letter_id": "ce-garbage"}),
        json!({"candle": "candles/EUR_USD/M1/2026-01-05T00:00:00Z", "dead_letter_id": "x"}),
        json!({"candle": "candles/EUR_USD/M1/2026-01-05T00:00:00Z", "extra": true}),
        json!([1, 2]),
    ] {
        let res = h.post_json("/replay", &body, Some(&oidc(OPERATOR_SA))).await;
        assert_eq!(res.status(), 400, "{body}");
    }
    let res = h
        .app
        .client
        .post(h.app.url("/replay"))
        .bearer_auth(oidc(OPERATOR_SA))
        .body(vec![b'{'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(h.bars(&key).await.is_empty());
}
