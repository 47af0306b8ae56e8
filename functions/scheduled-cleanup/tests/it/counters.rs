//! `aggregate-counters`: every sharded counter with a dirty shard gets the sum of its shards
//! written to its parent field; clean counters are not touched; two runs at once count each
//! counter once; an interrupted run finishes on the next; a counter whose document was deleted
//! is settled without recreating it.

use domain::counters::{CounterField, Membership};
use store::paths::{self, DocPath};
use store::{Db, DbConfig};

use super::*;

pub(crate) fn db(h: &Harness) -> Db {
    Db::new(DbConfig::emulator(h.project.clone(), h.host))
}

/// `posts/{id}` exists with `likes` likes from distinct users, liked concurrently.
pub(crate) async fn liked_post(db: &Db, id: &str, likes: usize) {
    let post = store::feed::PostRecord::new("v1", true, Utc::now(), "hello");
    store::feed::Feeds::new(db).write_post(id, &post).await.unwrap();
    like(db, id, 0..likes).await;
}

async fn like(db: &Db, id: &str, users: std::ops::Range<usize>) {
    let counted = paths::post(id).unwrap();
    let likes = users.map(|u| {
        let (db, counted) = (db.clone(), counted.clone());
        async move {
            let marker = paths::post_like(id, &format!("user-{u}")).unwrap();
            store::counters::Counters::new(&db)
                .set_membership(
                    &marker,
                    &counted,
                    CounterField::Likes,
                    Membership::Set,
                    &json!({"uid": format!("user-{u}")}),
                )
                .await
                .unwrap();
        }
    });
    futures::future::join_all(likes).await;
}

/// The `likes` field of `posts/{id}` (`None`: field or document missing).
async fn likes_field(db: &Db, id: &str) -> Option<i64> {
    let doc: Option<Value> = db.get(&paths::post(id).unwrap()).await.unwrap();
    doc.and_then(|d| d["likes"].as_i64())
}

async fn seed(h: &Harness) -> Db {
    let db = db(h);
    for (i, likes) in [3, 7, 12, 1, 25].into_iter().enumerate() {
        liked_post(&db, &format!("p{i}"), likes).await;
    }
    db
}

async fn assert_totals(db: &Db) {
    for (i, likes) in [3, 7, 12, 1, 25].into_iter().enumerate() {
        assert_eq!(likes_field(db, &format!("p{i}")).await, Some(likes), "p{i}");
    }
}

#[tokio::test]
async fn dirty_counters_get_their_totals_and_clean_ones_are_left_alone() {
    let h = harness(50, 100).await;
    let db = seed(&h).await;
    // A counter whose post was deleted: settled, and the post is not recreated.
    liked_post(&db, "gone", 4).await;
    let gone: DocPath = paths::post("gone").unwrap();
    db.delete(&gone).await.unwrap();

    let (status, body) = h.run("aggregate-counters", Some(&scheduler_token())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], 5, "five live counters aggregated: {body}");
    assert_totals(&db).await;
    assert_eq!(db.get::<Value>(&gone).await.unwrap(), None, "a deleted post stays deleted");

    // Nothing is dirty any more: the next run finds nothing and writes nothing.
    let (_, again) = h.run("aggregate-counters", Some(&scheduler_token())).await;
    assert_eq!((again["examined"].clone(), again["changed"].clone()), (json!(0), json!(0)));

    // New likes make one counter dirty again; only it is aggregated.
    like(&db, "p3", 1..6).await;
    let (_, later) = h.run("aggregate-counters", Some(&scheduler_token())).await;
    assert_eq!(later["changed"], 1, "{later}");
    assert_eq!(likes_field(&db, "p3").await, Some(6));
    assert_eq!(likes_field(&db, "p4").await, Some(25));

    let text = h.metrics_text().await;
    let line = r#"hearth_job_documents_total{job="aggregate-counters",outcome="changed"} 6"#;
    assert!(text.contains(line), "{line} in {text}");
}

#[tokio::test]
async fn two_concurrent_runs_count_each_counter_once() {
    let h = harness(4, 100).await;
    let db = seed(&h).await;
    assert_eq!(h.run_twice_at_once("aggregate-counters").await, 5);
    assert_totals(&db).await;
}

#[tokio::test]
async fn likes_during_a_run_are_not_lost() {
    let h = harness(3, 100).await;
    let db = seed(&h).await;
    let token = scheduler_token();
    let (run, ()) =
        tokio::join!(h.run("aggregate-counters", Some(&token)), like(&db, "p4", 25..65));
    assert_eq!(run.0, 200, "{run:?}");
    // Whatever the run saw, the likes it missed left their shards dirty: the next run settles.
    let (status, next) = h.run("aggregate-counters", Some(&token)).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(likes_field(&db, "p4").await, Some(65));
    let (_, last) = h.run("aggregate-counters", Some(&token)).await;
    assert_eq!(last["examined"], 0, "nothing left dirty: {last}");
}

#[tokio::test]
async fn an_interrupted_run_finishes_on_the_next() {
    // One page of 4 dirty shards per run: the first run stops with work left.
    let h = harness(4, 1).await;
    let db = seed(&h).await;
    let token = scheduler_token();
    let (_, first) = h.run("aggregate-counters", Some(&token)).await;
    assert_eq!(first["remaining"], true, "{first}");
    for _ in 0..12 {
        let (_, next) = h.run("aggregate-counters", Some(&token)).await;
        if next["examined"] == 0 {
            break;
        }
    }
    assert_totals(&db).await;
}
