//! Sharded counters against the emulator: concurrent idempotent likes, aggregation, never
//! negative.

use domain::counters::{CounterField, Membership};
use futures::future::join_all;
use serde_json::json;
use store::{counters, paths};

#[tokio::test]
async fn two_hundred_likes_with_duplicated_retries_count_two_hundred() {
    let db = crate::fresh_db().await;
    let post = paths::post("hot").unwrap();
    db.set(&post, &json!({"vendorId": "v", "isActive": true})).await.unwrap();
    let like = |user: usize| {
        let db = db.clone();
        let post = post.clone();
        async move {
            let uid = format!("u{user}");
            let marker = paths::post_like("hot", &uid).unwrap();
            counters::Counters::new(&db)
                .set_membership(
                    &marker,
                    &post,
                    CounterField::Likes,
                    Membership::Set,
                    &json!({"uid": uid}),
                )
                .await
        }
    };
    // Every user likes twice at the same time (a client retry racing its original).
    let results = join_all((0..400).map(|i| like(i % 200))).await;
    let counted: i64 = results.into_iter().map(|r| r.expect("like").delta).sum();
    assert_eq!(counted, 200);
    assert_eq!(counters::Counters::new(&db).read(&post, CounterField::Likes).await.unwrap(), 200);
    let used = join_all(
        counters::shard_paths(&post, CounterField::Likes)
            .unwrap()
            .iter()
            .map(|p| db.get::<serde_json::Value>(p)),
    )
    .await
    .into_iter()
    .filter(|r| matches!(r, Ok(Some(_))))
    .count();
    assert!(used > 1, "increments spread over shards ({used} used)");

    // Unlike, unlike again (nothing), like again.
    let marker = paths::post_like("hot", "u0").unwrap();
    let v = json!({"uid": "u0"});
    let field = CounterField::Likes;
    assert_eq!(
        counters::Counters::new(&db)
            .set_membership(&marker, &post, field, Membership::Clear, &v)
            .await
            .unwrap()
            .delta,
        -1
    );
    assert_eq!(
        counters::Counters::new(&db)
            .set_membership(&marker, &post, field, Membership::Clear, &v)
            .await
            .unwrap()
            .delta,
        0
    );
    assert_eq!(counters::Counters::new(&db).read(&post, field).await.unwrap(), 199);
    assert_eq!(
        counters::Counters::new(&db)
            .set_membership(&marker, &post, field, Membership::Set, &v)
            .await
            .unwrap()
            .delta,
        1
    );
    assert_eq!(counters::Counters::new(&db).read(&post, field).await.unwrap(), 200);

    // Aggregation writes the total to the parent's field, and only that field.
    assert_eq!(counters::Counters::new(&db).aggregate(&post, field).await.unwrap(), 200);
    let parent: serde_json::Value = db.get(&post).await.unwrap().unwrap();
    assert_eq!(parent["likes"], 200);
    assert_eq!(parent["vendorId"], "v");
}

#[tokio::test]
async fn never_negative_and_aggregation_skips_missing_parents() {
    let db = crate::fresh_db().await;
    let post = paths::post("quiet").unwrap();
    let marker = paths::post_like("quiet", "nobody").unwrap();
    let outcome = counters::Counters::new(&db)
        .set_membership(&marker, &post, CounterField::Likes, Membership::Clear, &json!({}))
        .await
        .unwrap();
    assert_eq!(outcome.delta, 0);
    assert_eq!(counters::Counters::new(&db).read(&post, CounterField::Likes).await.unwrap(), 0);
    // The parent does not exist: the total is computed, nothing is created.
    assert_eq!(
        counters::Counters::new(&db).aggregate(&post, CounterField::Likes).await.unwrap(),
        0
    );
    assert!(db.get::<serde_json::Value>(&post).await.unwrap().is_none());
    // Blind increments (shares) land on one shard each.
    for _ in 0..5 {
        counters::Counters::new(&db).increment(&post, CounterField::Shares, 1).await.unwrap();
    }
    assert_eq!(counters::Counters::new(&db).read(&post, CounterField::Shares).await.unwrap(), 5);
}
