//! Hostile callers of feed-fanout, in one place: forged OIDC tokens on both endpoints (the
//! Eventarc route `POST /` and the push route `POST /pubsub/fanout-tasks`): signed by a key
//! Google never published, tampered, expired, unsigned (`alg: none`), HS256 keyed with the
//! public key, for another audience, of another service account; and a well-authenticated but
//! forged continuation task that names another vendor, which must not spray a post into the
//! feeds of that vendor's followers.
//!
//! Covered elsewhere, not repeated here: a missing token, another account's token and another
//! audience on `POST /`, garbage CloudEvents, non-post documents and oversized bodies
//! (`event.rs`, `bad_callers_and_bad_events_are_refused`); a missing token on the push route,
//! undecodable and wrong-version tasks, stale add and remove tasks
//! (`tasks.rs`, `malformed_tasks_are_dead_lettered_and_stale_ones_do_nothing`); duplicated
//! events (`event.rs`); deletions and unfollows racing a fan-out (`race.rs`).

use gcp::eventarc::FirestoreEventKind::Created;
use serde_json::json;
use testkit::{keys, tokens};

use crate::{
    AUDIENCE, Harness, PUSH_SA, holders, post_event, post_fields, push_envelope, seed_followers,
    write_post,
};

/// Tokens that must all be refused, each with what is wrong with it.
fn forged_tokens() -> Vec<(&'static str, String)> {
    let claims = || tokens::google_oidc_claims(AUDIENCE, PUSH_SA);
    let good = tokens::sign(&claims(), keys::primary());
    let mut expired = claims();
    expired["iat"] = json!(tokens::now() - 7200);
    expired["exp"] = json!(tokens::now() - 3600);
    let mut other_issuer = claims();
    other_issuer["iss"] = json!("https://evil.example");
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
        ("another issuer", tokens::sign(&other_issuer, keys::primary())),
        ("not a JWT", "garbage".to_owned()),
    ]
}

#[tokio::test]
async fn forged_oidc_tokens_are_refused_on_both_endpoints_and_change_nothing() {
    let h = Harness::start(&[]).await;
    seed_followers(&h.db, "v", 5).await;
    write_post(&h.db, "p1", "v", true).await;
    let event = post_event(&h.project, "evt-1", Created, "p1", None, Some(post_fields("v", true)));
    let task = json!({"v": 1, "action": "add", "post_id": "p1", "vendor_id": "v",
        "start_after": null, "end_at": null, "page_size": 500, "attempt": 1});
    let task = push_envelope(&h.project, "m-1", &serde_json::to_vec(&task).unwrap());
    for (what, token) in forged_tokens() {
        let res = h.send_event_as(&event, Some(&token)).await;
        assert_eq!(res.status(), 401, "POST /: {what}");
        let res = h
            .app
            .client
            .post(h.app.url("/pubsub/fanout-tasks"))
            .header("content-type", "application/json")
            .bearer_auth(&token)
            .body(task.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "POST /pubsub/fanout-tasks: {what}");
    }
    assert!(holders(&h.db, "p1").await.is_empty(), "no refused call wrote anything");
    // The genuine event still works (its id was not burnt by the refused ones).
    assert_eq!(h.send_event(&event).await.status(), 204);
    assert_eq!(holders(&h.db, "p1").await.len(), 5);
}

#[tokio::test]
async fn a_task_naming_another_vendor_fans_out_to_the_posts_own_followers_only() {
    let h = Harness::start(&[]).await;
    let own = seed_followers(&h.db, "baker", 3).await;
    seed_followers(&h.db, "victim", 7).await;
    write_post(&h.db, "p2", "baker", true).await;
    // A task (validly pushed) claiming p2 belongs to "victim": the post as stored decides.
    let forged = json!({"v": 1, "action": "add", "post_id": "p2", "vendor_id": "victim",
        "start_after": null, "end_at": null, "page_size": 500, "attempt": 1});
    let body = push_envelope(&h.project, "m-forged", &serde_json::to_vec(&forged).unwrap());
    assert_eq!(h.push("/pubsub/fanout-tasks", body).await.status(), 204);
    crate::assert_exactly(&h.db, "p2", &own).await;
}
