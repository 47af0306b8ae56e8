//! Stage 4, notifications: before paying, the demo user registers a device (`registerDevice`);
//! once the payment is applied, payment-processor's `order-paid` is pushed to the notifier,
//! which pushes to the device through the fake FCM (`testkit::fake_fcm`, the HTTP v1 contract)
//! and writes the in-app entry `users/{uid}/notifications/{id}`; the feed stage's new post is
//! in the inbox too (inbox only: no device then), so the unread count is 2.

use std::time::{Duration, Instant};

use domain::notify::{NotificationKind, notification_id};
use serde_json::{Value, json};

use super::{Ctx, DemoReport, SignedUp, eventually};

/// How long the push may take (Pub/Sub push delivery, the processor, then the notifier).
const WITHIN: Duration = Duration::from_secs(30);

/// Registers a device for `user`; its token, when that worked.
pub async fn register(ctx: &Ctx, report: &mut DemoReport, user: &SignedUp) -> Option<String> {
    let t = Instant::now();
    let token = format!("demo-token-{}", ctx.suffix);
    let data = json!({"deviceId": "demo-phone", "token": token, "platform": "android"});
    let result = match ctx.call(&user.id_token, "registerDevice", data, None).await {
        Ok(result) if result["devices"] == 1 => Ok(format!("token {token} on 1 device")),
        Ok(result) => Err(format!("unexpected answer {result}")),
        Err(e) => Err(e),
    };
    report.record("registerDevice stores the user's FCM token", t, result).then_some(token)
}

/// The messages the fake FCM accepted for `token`.
async fn pushes(ctx: &Ctx, base: &str, token: &str) -> Result<Vec<Value>, String> {
    let all: Vec<Value> = ctx
        .http
        .get(format!("{base}/fake/messages"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    Ok(all.into_iter().filter(|m| m["token"] == token).collect())
}

/// Checks the order-paid push at the fake FCM and the entry in the user's inbox.
pub async fn run(ctx: &Ctx, report: &mut DemoReport, user: &SignedUp, token: Option<&str>) {
    let Some(token) = token else { return };
    let Some(base) = ctx.target.fcm.clone() else {
        report.record("the stack serves a fake FCM", Instant::now(), Err("no fake FCM URL".into()));
        return;
    };
    let t = Instant::now();
    let found = eventually(WITHIN, "an order_paid push at the fake FCM", || async {
        let got = pushes(ctx, &base, token).await?;
        Ok(got.into_iter().find(|m| m["data"]["kind"] == "order_paid"))
    })
    .await;
    let order = found.as_ref().ok().and_then(|m| m["data"]["orderId"].as_str()).map(str::to_owned);
    let detail = found.map(|m| {
        format!(
            "{:?} {:?}, collapse key {}",
            m["notification"]["title"].as_str().unwrap_or_default(),
            m["notification"]["body"].as_str().unwrap_or_default(),
            m["android"]["collapse_key"]
        )
    });
    if !report.record("order-paid -> notifier -> push at the fake FCM (HTTP v1)", t, detail) {
        return;
    }
    let Some(order) = order else { return };

    let t = Instant::now();
    let repo = store::notify::Notifications::new(&ctx.db);
    let id = notification_id(NotificationKind::OrderPaid, &order);
    let inbox = eventually(WITHIN, "the inbox entry", || async {
        let entry = repo.entry(&user.uid, &id).await.map_err(|e| e.to_string())?;
        Ok(entry.filter(|e| e.push == store::notify::PushState::Sent))
    })
    .await;
    // The feed stage's post reached the user too (a follower without a device then: inbox
    // only), so the inbox holds two unread entries.
    let post = notification_id(NotificationKind::NewPost, &format!("demo-post-{}", ctx.suffix));
    let post_entry = repo.entry(&user.uid, &post).await.map_err(|e| e.to_string());
    let unread = repo.unread(&user.uid).await.map_err(|e| e.to_string());
    let checked = match (inbox, post_entry, unread) {
        (Ok(entry), Ok(Some(_)), Ok(2)) => Ok(format!(
            "users/{}/notifications/{id}: {:?}, push sent; the new post's entry too; unread 2",
            user.uid, entry.title
        )),
        (Ok(_), Ok(None), _) => Err("no entry for the vendor's new post".to_owned()),
        (Ok(_), Ok(_), Ok(n)) => Err(format!("unread count {n}, expected 2")),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    };
    report.record(
        "the entry is in the in-app inbox (with the new post's), unread count 2",
        t,
        checked,
    );
}
