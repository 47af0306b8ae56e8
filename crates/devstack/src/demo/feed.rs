//! Stage 2: the feed. A vendor signs up through the Auth emulator; the demo user follows them
//! (`followVendor`); the vendor writes `posts/{postId}` over the Firestore REST API with their
//! own ID token, as a vendor client does (the emulator enforces `firestore.rules`); devstack's
//! Eventarc bridge delivers the write to feed-fanout, which puts the post in the follower's
//! feed (`feeds/{uid}/posts/{postId}`); `getFeed` returns it; `likePost` twice counts one like;
//! the follow record's trigger has the notifier tell the vendor of the new follower.

use std::time::{Duration, Instant};

use domain::counters::CounterField;
use domain::notify::NotificationKind;
use serde_json::{Value, json};

use super::signup::{SignedUp, sign_up};
use super::{Ctx, DemoReport, eventually, read_doc};

/// How long fan-out may take (Eventarc bridge, then feed-fanout's writes).
const FANOUT_WITHIN: Duration = Duration::from_secs(45);

/// The Firestore REST commit a client SDK sends to create `path` with `data` and a
/// server-set (`REQUEST_TIME`) `createdAt`, as the rules require for posts.
pub fn client_create(project: &str, path: &str, data: &Value) -> Value {
    json!({"writes": [{
        "update": {
            "name": format!("projects/{project}/databases/(default)/documents/{path}"),
            "fields": testkit::rules::fields(data),
        },
        "updateTransforms": [{"fieldPath": "createdAt", "setToServerValue": "REQUEST_TIME"}],
        "currentDocument": {"exists": false},
    }]})
}

/// Whether a `getFeed` result lists `post_id` as a post of a followed vendor.
pub fn feed_lists(result: &Value, post_id: &str) -> Result<String, String> {
    let posts = result["posts"].as_array().ok_or("no `posts` in the answer")?;
    let post = posts
        .iter()
        .find(|p| p["id"] == post_id)
        .ok_or_else(|| format!("{post_id} is not among the {} posts returned", posts.len()))?;
    if post["source"] == "following" {
        Ok(format!("{post_id} returned (source following, {} posts)", posts.len()))
    } else {
        Err(format!("{post_id} returned with source {}, expected following", post["source"]))
    }
}

/// Runs the stage for `user`.
pub async fn run(ctx: &Ctx, report: &mut DemoReport, user: &SignedUp) {
    let vendor_email = format!("vendor-{}@example.com", ctx.suffix);
    let Some(vendor) = sign_up(
        ctx,
        report,
        "a vendor signs up through the Auth emulator",
        &vendor_email,
        &format!("pw-{}-Vendor!", ctx.suffix),
    )
    .await
    else {
        return;
    };

    // Follow: the callable records the follow; Firestore has the follower record.
    let t = Instant::now();
    let followed = follow(ctx, user, &vendor).await;
    if !report.record("followVendor: the user follows the vendor", t, followed) {
        return;
    }

    // Post: the vendor writes the post as a client (rules enforced).
    let post_id = format!("demo-post-{}", ctx.suffix);
    let t = Instant::now();
    let posted = write_post(ctx, &vendor, &post_id).await;
    if !report.record("the vendor writes posts/{postId} as a client (rules on)", t, posted) {
        return;
    }

    // Eventarc -> feed-fanout -> the follower's feed.
    let t = Instant::now();
    let feed_path = format!("feeds/{}/posts/{post_id}", user.uid);
    let fanned = eventually(FANOUT_WITHIN, &feed_path, || async {
        read_doc(&ctx.db, &feed_path).await.map(|d| d.map(|fields| fields.len()))
    })
    .await
    .map(|n| format!("{feed_path} exists ({n} fields), through Eventarc and feed-fanout"));
    if !report.record("Eventarc delivers the post to feed-fanout: it is in the feed", t, fanned) {
        return;
    }

    let t = Instant::now();
    let feed = ctx
        .call(&user.id_token, "getFeed", json!({"limit": 20}), None)
        .await
        .and_then(|r| feed_lists(&r, &post_id));
    report.record("getFeed returns the post", t, feed);

    let t = Instant::now();
    let liked = like_twice(ctx, user, &post_id).await;
    report.record("likePost twice counts one like", t, liked);

    // The follow record's Eventarc trigger -> notifier -> the vendor hears of the follower.
    let t = Instant::now();
    let repo = store::notify::Notifications::new(&ctx.db);
    let heard = eventually(FANOUT_WITHIN, "a new-follower entry in the vendor's inbox", || async {
        for id in repo.inbox_ids(&vendor.uid, 10).await.map_err(|e| e.to_string())? {
            let entry = repo.entry(&vendor.uid, &id).await.map_err(|e| e.to_string())?;
            if let Some(e) = entry
                .filter(|e| e.kind == NotificationKind::NewFollower && e.actors.contains(&user.uid))
            {
                return Ok(Some(format!("users/{}/notifications/{id}: {:?}", vendor.uid, e.title)));
            }
        }
        Ok(None)
    })
    .await;
    report.record("followers/{docId} -> notifier: a follower in the vendor's inbox", t, heard);
}

async fn follow(ctx: &Ctx, user: &SignedUp, vendor: &SignedUp) -> Result<String, String> {
    let result =
        ctx.call(&user.id_token, "followVendor", json!({"vendorId": vendor.uid}), None).await?;
    if result["following"] != true {
        return Err(format!("followVendor answered {result}"));
    }
    let path = store::paths::follow(&vendor.uid, &user.uid).map_err(|e| e.to_string())?;
    let record: Option<store::feed::FollowerRecord> =
        ctx.db.get(&path).await.map_err(|e| e.to_string())?;
    match record {
        Some(r) if r.vendor_id == vendor.uid && r.buyer_id == user.uid => {
            Ok(format!("{} recorded", path.relative()))
        }
        Some(r) => Err(format!("{} holds {r:?}", path.relative())),
        None => Err(format!("{} is missing", path.relative())),
    }
}

async fn write_post(ctx: &Ctx, vendor: &SignedUp, post_id: &str) -> Result<String, String> {
    let path = format!("posts/{post_id}");
    let data = json!({
        "vendorId": vendor.uid,
        "isActive": true,
        "caption": "Fresh sourdough from the demo bakery",
    });
    let url = format!(
        "http://{}/v1/projects/{}/databases/(default)/documents:commit",
        ctx.target.emulators.firestore, ctx.target.project
    );
    let response = ctx
        .http
        .post(&url)
        .bearer_auth(&vendor.id_token)
        .json(&client_create(&ctx.target.project, &path, &data))
        .send()
        .await
        .map_err(|e| format!("Firestore emulator unreachable: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("{path} by vendor {}", vendor.uid))
    } else {
        Err(format!("HTTP {status}: {}", response.text().await.unwrap_or_default()))
    }
}

async fn like_twice(ctx: &Ctx, user: &SignedUp, post_id: &str) -> Result<String, String> {
    let data = json!({"postId": post_id});
    let first = ctx.call(&user.id_token, "likePost", data.clone(), None).await?;
    let expected = json!({"liked": true, "changed": true, "likes": 1});
    if first != expected {
        return Err(format!("the first likePost answered {first}, expected {expected}"));
    }
    let again = ctx.call(&user.id_token, "likePost", data, None).await?;
    let expected = json!({"liked": true, "changed": false, "likes": 1});
    if again != expected {
        return Err(format!("the repeated likePost answered {again}, expected {expected}"));
    }
    let counted = store::paths::post(post_id).map_err(|e| e.to_string())?;
    let likes = store::counters::Counters::new(&ctx.db)
        .read(&counted, CounterField::Likes)
        .await
        .map_err(|e| e.to_string())?;
    let marker = store::paths::post_like(post_id, &user.uid).map_err(|e| e.to_string())?;
    let marked = read_doc(&ctx.db, &marker.relative()).await?.is_some();
    if likes == 1 && marked {
        Ok(format!("counter shards sum to 1; {} exists", marker.relative()))
    } else {
        Err(format!("counter shards sum to {likes}; like marker present: {marked}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_write_sets_created_at_on_the_server_and_only_creates() {
        let commit =
            client_create("demo-p", "posts/p1", &json!({"vendorId": "v", "isActive": true}));
        let write = &commit["writes"][0];
        assert_eq!(
            write["update"]["name"],
            "projects/demo-p/databases/(default)/documents/posts/p1"
        );
        assert_eq!(write["update"]["fields"]["isActive"], json!({"booleanValue": true}));
        assert_eq!(write["updateTransforms"][0]["setToServerValue"], "REQUEST_TIME");
        assert_eq!(write["updateTransforms"][0]["fieldPath"], "createdAt");
        assert_eq!(write["currentDocument"]["exists"], false);
    }

    #[test]
    fn the_feed_must_list_the_post_as_followed() {
        let result = json!({"posts": [
            {"id": "other", "source": "trending"},
            {"id": "p1", "source": "following"},
        ]});
        assert!(feed_lists(&result, "p1").unwrap().contains("source following"));
        assert!(feed_lists(&result, "p2").unwrap_err().contains("not among the 2 posts"));
        let trending = json!({"posts": [{"id": "p1", "source": "trending"}]});
        assert!(feed_lists(&trending, "p1").is_err(), "a trending top-up is not fan-out");
        assert!(feed_lists(&json!({}), "p1").is_err());
    }
}
