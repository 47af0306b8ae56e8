//! Hostile callers of pulse, in one place: forged or missing OIDC tokens on the job and on the
//! push route, another service account, a job that does not exist, a Scheduler header that
//! names another job, undecodable and empty tasks (dead-lettered, not retried forever), an
//! oversized body, and a well-authenticated task naming strategies that do not exist.

use serde_json::json;
use testkit::{keys, tokens};

use crate::{AUDIENCE, Harness, PUSH_SA, bar, eur_usd_m1, oidc, push_envelope, strategy, t, task};

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused_on_both_routes_and_change_nothing() {
    let h = Harness::start(&[]).await;
    h.seed_strategy("t1", "s1", &strategy(&["alice"])).await;
    h.seed_bar(&eur_usd_m1(), &bar(0, 100.2, 99.8, 100.0, 2.0)).await;
    let body = push_envelope(&h.project, "m1", &serde_json::to_vec(&task(1, &["s1"], 1)).unwrap());
    let claims = || tokens::google_oidc_claims(AUDIENCE, PUSH_SA);
    let forged = [
        ("signed by a key not in the JWKS", Some(tokens::sign(&claims(), keys::other()))),
        ("unsigned", Some(tokens::unsigned(&claims()))),
        ("tampered", Some(tokens::tamper_signature(&tokens::sign(&claims(), keys::primary())))),
        (
            "another audience",
            Some(tokens::sign(
                &tokens::google_oidc_claims("https://other/", PUSH_SA),
                keys::primary(),
            )),
        ),
        ("none", None),
    ];
    for (what, token) in &forged {
        let res = h.post("/pubsub/pulse-tasks", body.clone(), token.as_deref()).await;
        assert_eq!(res.status(), 401, "push with {what}");
        let res = h.post("/jobs/pulse", Vec::new(), token.as_deref()).await;
        assert_eq!(res.status(), 401, "job with {what}");
    }
    let stranger = oidc("someone@evil.iam.gserviceaccount.com");
    assert_eq!(h.post("/pubsub/pulse-tasks", body.clone(), Some(&stranger)).await.status(), 401);
    assert_eq!(h.post("/jobs/pulse", Vec::new(), Some(&stranger)).await.status(), 401);
    assert!(h.trade("alice", "s1", t(0)).await.is_none(), "nothing ran");
    assert!(h.pulled_tasks(0).await.is_empty(), "nothing published");
}

#[tokio::test]
async fn unknown_jobs_mismatched_scheduler_headers_bad_tasks_and_missing_strategies() {
    let h = Harness::start(&[]).await;
    let (status, _) = h.run_job("delete-everything", t(1)).await;
    assert_eq!(status, 404);
    let res = h
        .app
        .client
        .post(h.app.url("/jobs/pulse"))
        .header("X-CloudScheduler", "true")
        .header("X-CloudScheduler-JobName", "projects/p/locations/l/jobs/other")
        .bearer_auth(oidc(PUSH_SA))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a Scheduler header naming another job");

    // Undecodable, wrong-version and empty tasks are dead-lettered and acknowledged.
    for (id, data) in [
        ("garbage", b"not json".to_vec()),
        (
            "v2",
            serde_json::to_vec(
                &json!({"v": 2, "minute": t(1), "runs_in_minute": 1, "strategies": []}),
            )
            .unwrap(),
        ),
        ("empty", serde_json::to_vec(&task(1, &[], 0)).unwrap()),
    ] {
        let res = h
            .post("/pubsub/pulse-tasks", push_envelope(&h.project, id, &data), Some(&oidc(PUSH_SA)))
            .await;
        assert_eq!(res.status(), 200, "{id}: acknowledged, not retried");
        let answer: serde_json::Value = res.json().await.unwrap();
        let letter_id = answer["deadLetterId"].as_str().expect("a dead letter id");
        let letter = store::DeadLetters::new(&h.db).get(letter_id).await.unwrap();
        assert!(letter.is_some(), "{id} is dead-lettered");
    }

    // An oversized body is refused before it is read.
    let huge = vec![b'a'; 2 * 1024 * 1024];
    assert_eq!(h.post("/pubsub/pulse-tasks", huge, Some(&oidc(PUSH_SA))).await.status(), 413);

    // A task naming strategies that do not exist (of this tenant or another) runs nothing.
    assert_eq!(h.deliver("ghost", &task(1, &["nope", "../../x"], 5)).await, 204);
}
