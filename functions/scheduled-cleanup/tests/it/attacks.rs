//! Hostile callers of scheduled-cleanup, in one place: forged OIDC tokens on `POST /jobs/<job>`
//! (signed by a key Google never published, payload edited, expired, unsigned `alg: none`,
//! HS256 keyed with the public key, another audience, another issuer), job names that are not
//! jobs (path tricks included) and other methods. None of them deletes anything.
//!
//! Covered elsewhere, not repeated here: no token, a tampered signature, an unknown service
//! account, an unknown job name and a Scheduler header naming another job
//! (`main.rs`, `callers_and_job_names_are_checked`).

use super::*;

#[tokio::test]
async fn forged_tokens_odd_paths_and_methods_delete_nothing() {
    let h = harness(10, 10).await;
    seed(&h, 3, 0).await;
    let claims = || tokens::google_oidc_claims(AUDIENCE, SCHEDULER);
    let good = tokens::sign(&claims(), primary());
    let mut expired = claims();
    expired["iat"] = json!(tokens::now() - 7200);
    expired["exp"] = json!(tokens::now() - 3600);
    let mut other_issuer = claims();
    other_issuer["iss"] = json!("https://evil.example");
    let forged = [
        ("signed by a key not in the JWKS", tokens::sign(&claims(), testkit::keys::other())),
        (
            "payload edited to another account",
            tokens::tamper_payload(&good, |c| c["email"] = json!("intruder@evil.example")),
        ),
        ("expired", tokens::sign(&expired, primary())),
        ("unsigned (alg none)", tokens::unsigned(&claims())),
        ("HS256 keyed with the public key", tokens::hs256_with_public_key(&claims(), primary())),
        (
            "another audience",
            tokens::sign(
                &tokens::google_oidc_claims("https://other.example", SCHEDULER),
                primary(),
            ),
        ),
        ("another issuer", tokens::sign(&other_issuer, primary())),
    ];
    for (what, token) in &forged {
        let (status, _) = h.run("prune-idempotency", Some(token)).await;
        assert_eq!(status, 401, "{what}");
    }
    for job in ["..%2Fprune-idempotency", "prune-idempotency%00", "PRUNE-IDEMPOTENCY", "%2e%2e"] {
        let (status, _) = h.run(job, Some(&scheduler_token())).await;
        assert!(status == 404 || status == 400, "{job}: {status}");
    }
    let get = h
        .app
        .client
        .get(h.app.url("/jobs/prune-idempotency"))
        .bearer_auth(scheduler_token())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405, "jobs run on POST only");
    assert_eq!(h.remaining_ids().await.len(), 3, "nothing was deleted by refused calls");
    // The genuine caller still runs the job.
    let (status, body) = h.run("prune-idempotency", Some(&scheduler_token())).await;
    assert_eq!(status, 200, "{body}");
    assert!(h.remaining_ids().await.is_empty());
}
