//! The provider clients against testkit's fake provider: real HTTP contracts, retries only on
//! transient failures, idempotent creates, and the circuit breaker.

use std::time::Duration;

use domain::backoff::Backoff;
use providers::pesapal::StatusOutcome;
use providers::{
    BreakerPolicy, BreakerState, CallPolicy, NewPayment, PesapalClient, PesapalSettings,
    ProviderError, StripeClient,
};
use secrecy::SecretString;
use testkit::fake_provider::FakeProvider;

fn policy(threshold: u32) -> CallPolicy {
    CallPolicy {
        request_timeout: Duration::from_secs(2),
        retry: Backoff {
            initial: Duration::from_millis(5),
            multiplier: 2.0,
            max: Duration::from_millis(20),
            max_attempts: 3,
            jitter_fraction: 0.0,
        },
        breaker: BreakerPolicy {
            failure_threshold: threshold,
            open_for: Duration::from_millis(300),
        },
    }
}

fn payment(key: &str) -> NewPayment {
    NewPayment {
        order_id: "ord_1".to_owned(),
        payment_id: "pay_1".to_owned(),
        amount_minor: 2599,
        currency: "usd".to_owned(),
        description: "Kettle".to_owned(),
        email: Some("ada@example.com".to_owned()),
        idempotency_key: key.to_owned(),
    }
}

fn stripe(fake: &FakeProvider, threshold: u32) -> StripeClient {
    StripeClient::new(
        &fake.base_url,
        SecretString::from("sk_test_123".to_owned()),
        policy(threshold),
    )
    .unwrap()
}

#[tokio::test]
async fn stripe_creates_an_intent_idempotently_and_retries_5xx_only() {
    let fake = FakeProvider::start().await;
    let client = stripe(&fake, 5);
    fake.fail_next(&[500, 503]);
    let first = client.create_payment_intent(&payment("k1")).await.unwrap();
    assert_eq!(fake.stripe_calls(), 3, "two transient failures, then success");
    assert!(first.provider_payment_id.starts_with("pi_"));
    assert!(first.client_secret.as_deref().unwrap().starts_with(&first.provider_payment_id));
    let again = client.create_payment_intent(&payment("k1")).await.unwrap();
    assert_eq!(again, first, "the same Idempotency-Key returns the same intent");
    assert_eq!(fake.intents().len(), 1);
    assert_eq!(fake.intents()[0]["metadata"]["order_id"], "ord_1");

    fake.fail_next(&[402]);
    let calls = fake.stripe_calls();
    let refused = client.create_payment_intent(&payment("k2")).await.unwrap_err();
    assert!(matches!(refused, ProviderError::Rejected { status: 402, .. }), "{refused:?}");
    assert!(!refused.is_retryable());
    assert_eq!(fake.stripe_calls(), calls + 1, "a 4xx is never retried");

    let mut other = payment("k1");
    other.amount_minor = 1;
    assert!(matches!(
        client.create_payment_intent(&other).await,
        Err(ProviderError::Rejected { status: 400, .. })
    ));
}

#[tokio::test]
async fn the_breaker_opens_and_recovers() {
    let fake = FakeProvider::start().await;
    let client = stripe(&fake, 2);
    fake.fail_next(&[500; 6]);
    for _ in 0..2 {
        let error = client.create_payment_intent(&payment("b1")).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable { attempts: 3, .. }), "{error:?}");
    }
    assert!(matches!(client.http().breaker_state(), BreakerState::Open { .. }));
    let calls = fake.stripe_calls();
    let error = client.create_payment_intent(&payment("b1")).await.unwrap_err();
    assert!(matches!(error, ProviderError::CircuitOpen { .. }));
    assert!(error.is_retryable());
    assert_eq!(fake.stripe_calls(), calls, "an open circuit sends nothing");
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.create_payment_intent(&payment("b1")).await.unwrap();
    assert_eq!(client.http().breaker_state(), BreakerState::Closed { failures: 0 });
}

#[tokio::test]
async fn pesapal_submits_orders_and_reports_status() {
    let fake = FakeProvider::start().await;
    let client = PesapalClient::new(
        PesapalSettings {
            base_url: fake.base_url.clone(),
            consumer_key: "ck".to_owned(),
            consumer_secret: SecretString::from("cs".to_owned()),
            ipn_id: "ipn-1".to_owned(),
            callback_url: "https://shop.test/paid".to_owned(),
        },
        policy(5),
    )
    .unwrap();
    let created = client.submit_order(&payment("p1")).await.unwrap();
    assert!(created.redirect_url.unwrap().contains(&created.provider_payment_id));
    assert_eq!(fake.pesapal_orders()[&created.provider_payment_id], "ord_1");
    let status = client.transaction_status(&created.provider_payment_id).await.unwrap();
    assert_eq!(status.outcome(), StatusOutcome::Pending);
    fake.set_pesapal_status(&created.provider_payment_id, 1);
    let status = client.transaction_status(&created.provider_payment_id).await.unwrap();
    assert_eq!(
        status.outcome(),
        StatusOutcome::Final(domain::messages::PaymentEventKind::Succeeded)
    );
    assert_eq!(status.amount, Some(25.99));
    assert_eq!(status.merchant_reference.as_deref(), Some("ord_1"));
    // An unknown tracking id is an error inside an HTTP 200, never a pending payment.
    let unknown = client.transaction_status("no-such-tracking-id").await.unwrap();
    assert!(
        matches!(&unknown.outcome(), StatusOutcome::Error { code, .. } if code == "order_not_found"),
        "{unknown:?}"
    );
}
