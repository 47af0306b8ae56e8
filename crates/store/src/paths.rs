//! Every Firestore document path of the Hearth data model, built in one place.
//!
//! Nothing else in the codebase formats a path string: callers ask this module for a typed
//! [`DocPath`] (a collection plus a validated document id) or a [`CollectionPath`], and `store`
//! turns those into the resource names the Firestore API wants. Ids are validated against
//! Firestore's rules: non-empty, at most 1,500 bytes, no `/`, not `.` or `..`, and not of the
//! reserved form `__.*__`.
//!
//! Data model: tenancy and trading documents, the marketplace collections, counter
//! shards under the counted document (`<doc>/shards/{n}`), and the infrastructure collections
//! `idempotency/`, `dead_letters/`, `stream_health/`, `invitations/`, `tenant_domains/`,
//! `config/`.

use std::fmt;

/// Firestore's limit on the size of a document id, in bytes.
pub const MAX_ID_BYTES: usize = 1500;

/// Collection ids used by the data model.
pub mod names {
    /// `tenants/{tenantId}`
    pub const TENANTS: &str = "tenants";
    /// `tenants/{t}/users/{uid}` (membership) and the top-level `users/{uid}`.
    pub const USERS: &str = "users";
    /// `tenants/{t}/ledger_trades/{tradeId}` (append-only).
    pub const LEDGER_TRADES: &str = "ledger_trades";
    /// `tenants/{t}/strategies/{strategyId}`
    pub const STRATEGIES: &str = "strategies";
    /// `users/{uid}/secrets/alpaca`
    pub const SECRETS: &str = "secrets";
    /// `users/{uid}/alpacaAccounts/snapshot`
    pub const ALPACA_ACCOUNTS: &str = "alpacaAccounts";
    /// `users/{uid}/status/trading`
    pub const STATUS: &str = "status";
    /// `users/{uid}/config/preferences` and the top-level `config/{name}`.
    pub const CONFIG: &str = "config";
    /// `users/{uid}/shadowTradeHistory/{id}`
    pub const SHADOW_TRADE_HISTORY: &str = "shadowTradeHistory";
    /// `users/{uid}/signals/{id}`
    pub const SIGNALS: &str = "signals";
    /// `candles/{instrument}/{granularity}/{ts}`
    pub const CANDLES: &str = "candles";
    /// `vendors/{vendorId}`
    pub const VENDORS: &str = "vendors";
    /// `products/{productId}`
    pub const PRODUCTS: &str = "products";
    /// Vendor handles claimed, one document per handle.
    pub const VENDOR_HANDLES: &str = "vendor_handles";
    /// Refunds of orders.
    pub const REFUNDS: &str = "refunds";
    /// Per-vendor sales totals, one document per vendor, day and currency.
    pub const VENDOR_SALES: &str = "vendor_sales";
    /// `posts/{postId}` and `feeds/{uid}/posts/{postId}`
    pub const POSTS: &str = "posts";
    /// `followers/{followerDocId}`
    pub const FOLLOWERS: &str = "followers";
    /// `feeds/{uid}/posts/{postId}`
    pub const FEEDS: &str = "feeds";
    /// `reservations/{id}`
    pub const RESERVATIONS: &str = "reservations";
    /// `holds/{uid}`: the units a user holds (the cap of `domain::inventory::may_hold`)
    pub const HOLDS: &str = "holds";
    /// `orders/{orderId}`
    pub const ORDERS: &str = "orders";
    /// `payments/{id}`
    pub const PAYMENTS: &str = "payments";
    /// `<counted doc>/shards/{n}`
    pub const SHARDS: &str = "shards";
    /// `posts/{postId}/likes/{uid}`: one like (the marker of the likes counter).
    pub const LIKES: &str = "likes";
    /// `posts/{postId}/views/{uid}` and `stories/{storyId}/views/{uid}`: one viewer.
    pub const VIEWS: &str = "views";
    /// `stories/{storyId}`
    pub const STORIES: &str = "stories";
    /// `products/{p}/stock/{stockKey}` (stock of a product or variant; shards under it)
    pub const STOCK: &str = "stock";
    /// `rate_limits/{scopedKey}`
    pub const RATE_LIMITS: &str = "rate_limits";
    /// `idempotency/{scopedKey}`
    pub const IDEMPOTENCY: &str = "idempotency";
    /// `dead_letters/{id}`
    pub const DEAD_LETTERS: &str = "dead_letters";
    /// `stream_health/{streamId}`
    pub const STREAM_HEALTH: &str = "stream_health";
    /// `streams/{streamId}`: a market-data stream's processed data.
    pub const STREAMS: &str = "streams";
    /// `streams/{streamId}/bars/{ts}`: a processed candle with its features and label.
    pub const BARS: &str = "bars";
    /// `invitations/{email}`
    pub const INVITATIONS: &str = "invitations";
    /// `tenant_domains/{domain}`
    pub const TENANT_DOMAINS: &str = "tenant_domains";
    /// `users/{uid}/notifications/{id}`: the in-app inbox.
    pub const NOTIFICATIONS: &str = "notifications";
}

/// Why an id cannot name a Firestore document or collection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The id is empty.
    #[error("{what} id is empty")]
    Empty {
        /// What the id names (e.g. `tenant`).
        what: &'static str,
    },
    /// The id contains a `/`.
    #[error("{what} id contains '/'")]
    Slash {
        /// What the id names.
        what: &'static str,
    },
    /// The id is `.` or `..`.
    #[error("{what} id may not be '.' or '..'")]
    Dots {
        /// What the id names.
        what: &'static str,
    },
    /// The id matches the reserved pattern `__.*__`.
    #[error("{what} id matches the reserved pattern __.*__")]
    Reserved {
        /// What the id names.
        what: &'static str,
    },
    /// The id is longer than 1,500 bytes.
    #[error("{what} id is {len} bytes, over the 1500-byte limit")]
    TooLong {
        /// What the id names.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

/// Checks that `id` may name a Firestore document or collection.
pub fn validate_id(what: &'static str, id: &str) -> Result<(), PathError> {
    if id.is_empty() {
        return Err(PathError::Empty { what });
    }
    if id.contains('/') {
        return Err(PathError::Slash { what });
    }
    if id == "." || id == ".." {
        return Err(PathError::Dots { what });
    }
    if id.len() >= 4 && id.starts_with("__") && id.ends_with("__") {
        return Err(PathError::Reserved { what });
    }
    if id.len() > MAX_ID_BYTES {
        return Err(PathError::TooLong { what, len: id.len() });
    }
    Ok(())
}

/// A collection: its id and the document it lives under (`None` for a root collection).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollectionPath {
    parent: Option<Box<DocPath>>,
    id: String,
}

/// A document: the collection it belongs to and its validated id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocPath {
    collection: CollectionPath,
    id: String,
}

impl CollectionPath {
    /// A root collection.
    pub fn root(id: &str) -> Result<Self, PathError> {
        validate_id("collection", id)?;
        Ok(Self { parent: None, id: id.to_owned() })
    }

    /// The collection id (its last segment).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The document this collection lives under, if it is a subcollection.
    pub fn parent(&self) -> Option<&DocPath> {
        self.parent.as_deref()
    }

    /// The document `id` in this collection.
    pub fn doc(&self, id: &str) -> Result<DocPath, PathError> {
        validate_id("document", id)?;
        Ok(DocPath { collection: self.clone(), id: id.to_owned() })
    }

    /// The parent resource name as the firestore crate's `parent(...)` / `*_at` APIs want it:
    /// the database's documents root for a root collection, else the parent document's full
    /// name. `documents_root` is `projects/{p}/databases/{d}/documents`
    /// (`FirestoreDb::get_documents_path()` or [`documents_root`]).
    pub fn parent_name(&self, documents_root: &str) -> String {
        match &self.parent {
            None => documents_root.to_owned(),
            Some(doc) => doc.full_name(documents_root),
        }
    }

    /// The full resource name of the collection.
    pub fn full_name(&self, documents_root: &str) -> String {
        format!("{}/{}", self.parent_name(documents_root), self.id)
    }
}

impl DocPath {
    /// The collection this document belongs to.
    pub fn collection(&self) -> &CollectionPath {
        &self.collection
    }

    /// The collection id (the firestore crate's `collection_id`).
    pub fn collection_id(&self) -> &str {
        self.collection.id()
    }

    /// The document id (its last segment).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The subcollection `id` under this document.
    pub fn sub(&self, id: &str) -> Result<CollectionPath, PathError> {
        validate_id("collection", id)?;
        Ok(CollectionPath { parent: Some(Box::new(self.clone())), id: id.to_owned() })
    }

    /// The parent resource name for the firestore crate's `parent(...)` / `*_at` APIs (see
    /// [`CollectionPath::parent_name`]).
    pub fn parent_name(&self, documents_root: &str) -> String {
        self.collection.parent_name(documents_root)
    }

    /// The document's full resource name,
    /// `projects/{p}/databases/{d}/documents/<relative path>`.
    pub fn full_name(&self, documents_root: &str) -> String {
        format!("{}/{}", self.collection.full_name(documents_root), self.id)
    }

    /// The path relative to the documents root, e.g. `tenants/t1/users/u1`.
    pub fn relative(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for CollectionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.parent {
            None => f.write_str(&self.id),
            Some(doc) => write!(f, "{doc}/{}", self.id),
        }
    }
}

impl fmt::Display for DocPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.collection, self.id)
    }
}

/// `projects/{project}/databases/{database}/documents`, the root every document name starts with.
pub fn documents_root(project_id: &str, database_id: &str) -> String {
    format!("projects/{project_id}/databases/{database_id}/documents")
}

/// The database resource name, `projects/{project}/databases/{database}`.
pub fn database_name(project_id: &str, database_id: &str) -> String {
    format!("projects/{project_id}/databases/{database_id}")
}

fn root_doc(collection: &'static str, what: &'static str, id: &str) -> Result<DocPath, PathError> {
    validate_id(what, id)?;
    Ok(DocPath {
        collection: CollectionPath { parent: None, id: collection.to_owned() },
        id: id.to_owned(),
    })
}

fn sub_doc(
    parent: DocPath,
    collection: &'static str,
    what: &'static str,
    id: &str,
) -> Result<DocPath, PathError> {
    validate_id(what, id)?;
    Ok(DocPath {
        collection: CollectionPath { parent: Some(Box::new(parent)), id: collection.to_owned() },
        id: id.to_owned(),
    })
}

fn root_collection(id: &'static str) -> CollectionPath {
    CollectionPath { parent: None, id: id.to_owned() }
}

fn sub_collection(parent: DocPath, id: &'static str) -> CollectionPath {
    CollectionPath { parent: Some(Box::new(parent)), id: id.to_owned() }
}

// ---- tenancy (trading seed) -------------------------------------------------------------

/// The `tenants` collection.
pub fn tenants() -> CollectionPath {
    root_collection(names::TENANTS)
}

/// `tenants/{tenant_id}`
pub fn tenant(tenant_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::TENANTS, "tenant", tenant_id)
}

/// `tenants/{tenant_id}/users`: the tenant's memberships.
pub fn tenant_members(tenant_id: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(tenant(tenant_id)?, names::USERS))
}

/// `tenants/{tenant_id}/users/{uid}`: one membership.
pub fn tenant_member(tenant_id: &str, uid: &str) -> Result<DocPath, PathError> {
    sub_doc(tenant(tenant_id)?, names::USERS, "user", uid)
}

/// `tenants/{tenant_id}/ledger_trades`
pub fn ledger_trades(tenant_id: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(tenant(tenant_id)?, names::LEDGER_TRADES))
}

/// `tenants/{tenant_id}/ledger_trades/{trade_id}` (append-only).
pub fn ledger_trade(tenant_id: &str, trade_id: &str) -> Result<DocPath, PathError> {
    sub_doc(tenant(tenant_id)?, names::LEDGER_TRADES, "trade", trade_id)
}

/// `tenants/{tenant_id}/strategies`
pub fn strategies(tenant_id: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(tenant(tenant_id)?, names::STRATEGIES))
}

/// `tenants/{tenant_id}/strategies/{strategy_id}`
pub fn strategy(tenant_id: &str, strategy_id: &str) -> Result<DocPath, PathError> {
    sub_doc(tenant(tenant_id)?, names::STRATEGIES, "strategy", strategy_id)
}

// ---- user root ----------------------------------------------------------------------------

/// The `users` collection.
pub fn users() -> CollectionPath {
    root_collection(names::USERS)
}

/// `users/{uid}`
pub fn user(uid: &str) -> Result<DocPath, PathError> {
    root_doc(names::USERS, "user", uid)
}

/// `users/{uid}/secrets/alpaca`
pub fn user_alpaca_secret(uid: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::SECRETS, "secret", "alpaca")
}

/// `users/{uid}/alpacaAccounts/snapshot`
pub fn user_alpaca_snapshot(uid: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::ALPACA_ACCOUNTS, "account", "snapshot")
}

/// `users/{uid}/status/trading`
pub fn user_trading_status(uid: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::STATUS, "status", "trading")
}

/// `users/{uid}/config/preferences`
pub fn user_preferences(uid: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::CONFIG, "config", "preferences")
}

/// `users/{uid}/config/devices`: the user's registered FCM tokens (one document, at most
/// `domain::notify::MAX_DEVICES`).
pub fn user_devices(uid: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::CONFIG, "config", "devices")
}

/// `users/{uid}/notifications`: the user's in-app inbox.
pub fn user_notifications(uid: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(user(uid)?, names::NOTIFICATIONS))
}

/// `users/{uid}/notifications/{id}`: one inbox entry.
pub fn user_notification(uid: &str, id: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::NOTIFICATIONS, "notification", id)
}

/// The uid and id of a relative path `users/{uid}/notifications/{id}` (as an Eventarc event
/// names its document); `None` for any other document.
pub fn notification_of(relative: &str) -> Option<(&str, &str)> {
    user_doc_of(relative, names::NOTIFICATIONS, "notification")
}

/// The uid and id of `users/{uid}/{collection}/{id}`.
fn user_doc_of<'a>(
    relative: &'a str,
    collection: &str,
    what: &'static str,
) -> Option<(&'a str, &'a str)> {
    let rest = relative.strip_prefix(names::USERS)?.strip_prefix('/')?;
    let (uid, rest) = rest.split_once('/')?;
    let id = rest.strip_prefix(collection)?.strip_prefix('/')?;
    validate_id("user", uid).ok()?;
    validate_id(what, id).ok()?;
    Some((uid, id))
}

/// `users/{uid}/shadowTradeHistory`
pub fn shadow_trades(uid: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(user(uid)?, names::SHADOW_TRADE_HISTORY))
}

/// `users/{uid}/shadowTradeHistory/{id}`
pub fn shadow_trade(uid: &str, id: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::SHADOW_TRADE_HISTORY, "shadow trade", id)
}

/// `users/{uid}/signals`
pub fn signals(uid: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(user(uid)?, names::SIGNALS))
}

/// `users/{uid}/signals/{id}`
pub fn signal(uid: &str, id: &str) -> Result<DocPath, PathError> {
    sub_doc(user(uid)?, names::SIGNALS, "signal", id)
}

/// The uid and id of a relative path `users/{uid}/signals/{id}` (as an Eventarc event names its
/// document); `None` for any other document.
pub fn signal_of(relative: &str) -> Option<(&str, &str)> {
    user_doc_of(relative, names::SIGNALS, "signal")
}

// ---- market data --------------------------------------------------------------------------

/// `candles/{instrument}/{granularity}`: the candles of one instrument at one granularity.
///
/// The design spells a candle `candles/{instrument}/{granularity}/data/{ts}`, but that is five
/// segments, which names a *collection* in Firestore (collection / doc / collection / doc /
/// collection), and the seed's "collection `candles/{instrument}/{granularity}/data`" is four
/// segments, a document. The nearest valid layout that invents nothing drops the literal `data`:
/// collection `candles`, document `{instrument}`, subcollection `{granularity}`, document `{ts}`.
pub fn candle_series(instrument: &str, granularity: &str) -> Result<CollectionPath, PathError> {
    validate_id("granularity", granularity)?;
    let instrument = root_doc(names::CANDLES, "instrument", instrument)?;
    Ok(CollectionPath { parent: Some(Box::new(instrument)), id: granularity.to_owned() })
}

/// `candles/{instrument}/{granularity}/{ts}`: one candle (see [`candle_series`] for why there
/// is no `data` segment).
pub fn candle(instrument: &str, granularity: &str, ts: &str) -> Result<DocPath, PathError> {
    let series = candle_series(instrument, granularity)?;
    validate_id("candle timestamp", ts)?;
    Ok(DocPath { collection: series, id: ts.to_owned() })
}

/// The `(instrument, granularity, ts)` of a relative document path
/// `candles/{instrument}/{granularity}/{ts}` (as an Eventarc event names its document); `None`
/// for any other document.
pub fn candle_of(relative: &str) -> Option<(&str, &str, &str)> {
    let rest = relative.strip_prefix(names::CANDLES)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (instrument, granularity, ts) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    candle(instrument, granularity, ts).ok()?;
    Some((instrument, granularity, ts))
}

/// `streams/{stream_id}`: the processed data of one market-data stream
/// (`{instrument}_{granularity}`).
pub fn stream(stream_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::STREAMS, "stream", stream_id)
}

/// `streams/{stream_id}/bars`: the stream's processed candles, one per candle start time.
pub fn stream_bars(stream_id: &str) -> Result<CollectionPath, PathError> {
    stream(stream_id)?.sub(names::BARS)
}

/// `streams/{stream_id}/bars/{ts}`: a processed candle with its features and, once resolved,
/// its label (`ts` is the candle's document id).
pub fn stream_bar(stream_id: &str, ts: &str) -> Result<DocPath, PathError> {
    sub_doc(stream(stream_id)?, names::BARS, "candle timestamp", ts)
}

// ---- marketplace --------------------------------------------------------------------------

/// The `vendors` collection.
pub fn vendors() -> CollectionPath {
    root_collection(names::VENDORS)
}

/// `vendors/{vendor_id}`
pub fn vendor(vendor_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::VENDORS, "vendor", vendor_id)
}

/// The `products` collection.
pub fn products() -> CollectionPath {
    root_collection(names::PRODUCTS)
}

/// `products/{product_id}`
pub fn product(product_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::PRODUCTS, "product", product_id)
}

/// `vendor_handles/{handle}`: the claim of a vendor handle (`{ vendor_id }`).
pub fn vendor_handle(handle: &str) -> Result<DocPath, PathError> {
    root_doc(names::VENDOR_HANDLES, "vendor handle", handle)
}

/// `refunds/{refund_id}`
pub fn refund(refund_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::REFUNDS, "refund", refund_id)
}

/// `vendor_sales/{vendor_id}:{day}:{currency}`: one vendor's paid sales of one UTC day
/// (`YYYY-MM-DD`) in one currency.
pub fn vendor_sales(vendor_id: &str, day: &str, currency: &str) -> Result<DocPath, PathError> {
    validate_id("vendor", vendor_id)?;
    root_doc(names::VENDOR_SALES, "vendor sales", &format!("{vendor_id}:{day}:{currency}"))
}

/// The `posts` collection.
pub fn posts() -> CollectionPath {
    root_collection(names::POSTS)
}

/// `posts/{post_id}`
pub fn post(post_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::POSTS, "post", post_id)
}

/// The post id of a relative document path `posts/{postId}` (as an Eventarc event names its
/// document); `None` for any other document.
pub fn post_id_of(relative: &str) -> Option<&str> {
    let id = relative.strip_prefix(names::POSTS)?.strip_prefix('/')?;
    validate_id("post", id).ok()?;
    Some(id)
}

/// The `followers` collection (`vendorId`, `buyerId`, `followedAt`).
pub fn followers() -> CollectionPath {
    root_collection(names::FOLLOWERS)
}

/// The follower document id of a relative document path `followers/{docId}` (as an Eventarc
/// event names its document); `None` for any other document.
pub fn follower_id_of(relative: &str) -> Option<&str> {
    let id = relative.strip_prefix(names::FOLLOWERS)?.strip_prefix('/')?;
    validate_id("follower", id).ok()?;
    Some(id)
}

/// `followers/{follower_doc_id}`
pub fn follower(follower_doc_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::FOLLOWERS, "follower", follower_doc_id)
}

/// `feeds/{uid}/posts`: one user's feed.
pub fn feed(uid: &str) -> Result<CollectionPath, PathError> {
    Ok(sub_collection(root_doc(names::FEEDS, "feed owner", uid)?, names::POSTS))
}

/// `feeds/{uid}/posts/{post_id}`
pub fn feed_post(uid: &str, post_id: &str) -> Result<DocPath, PathError> {
    sub_doc(root_doc(names::FEEDS, "feed owner", uid)?, names::POSTS, "post", post_id)
}

/// The `reservations` collection.
pub fn reservations() -> CollectionPath {
    root_collection(names::RESERVATIONS)
}

/// `holds/{uid}`
pub fn holds(uid: &str) -> Result<DocPath, PathError> {
    root_doc(names::HOLDS, "uid", uid)
}

/// `reservations/{id}`
pub fn reservation(id: &str) -> Result<DocPath, PathError> {
    root_doc(names::RESERVATIONS, "reservation", id)
}

/// `orders/{order_id}`
pub fn order(order_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::ORDERS, "order", order_id)
}

/// `payments/{id}`
pub fn payment(id: &str) -> Result<DocPath, PathError> {
    root_doc(names::PAYMENTS, "payment", id)
}

/// `<counted>/shards`: the shards of a sharded counter live under the counted document
/// (e.g. `products/{p}/shards/{n}`, `posts/{p}/shards/{n}`).
pub fn counter_shards(counted: &DocPath) -> CollectionPath {
    sub_collection(counted.clone(), names::SHARDS)
}

/// `<counted>/shards/{n}`: shard `n` of the counter on `counted`.
pub fn counter_shard(counted: &DocPath, n: u32) -> DocPath {
    DocPath { collection: counter_shards(counted), id: n.to_string() }
}

/// `<counted>/shards/{field}_{n}`: shard `n` of the counter `field` when one document has
/// several counters (e.g. `posts/{p}/shards/likes_3`, `posts/{p}/shards/views_41`).
pub fn field_counter_shard(counted: &DocPath, field: &str, n: u32) -> Result<DocPath, PathError> {
    let id = format!("{field}_{n}");
    validate_id("counter shard", &id)?;
    Ok(DocPath { collection: counter_shards(counted), id })
}

/// `posts/{post_id}/likes/{uid}`: `uid`'s like of the post.
pub fn post_like(post_id: &str, uid: &str) -> Result<DocPath, PathError> {
    sub_doc(post(post_id)?, names::LIKES, "user", uid)
}

/// `posts/{post_id}/views/{uid}`: `uid` viewed the post.
pub fn post_view(post_id: &str, uid: &str) -> Result<DocPath, PathError> {
    sub_doc(post(post_id)?, names::VIEWS, "user", uid)
}

/// `followers/{vendor_id}:{buyer_id}`: `buyer_id` follows `vendor_id` (one document per pair,
/// so a repeated follow finds it).
pub fn follow(vendor_id: &str, buyer_id: &str) -> Result<DocPath, PathError> {
    validate_id("vendor", vendor_id)?;
    validate_id("buyer", buyer_id)?;
    root_doc(names::FOLLOWERS, "follower", &format!("{vendor_id}:{buyer_id}"))
}

/// The `stories` collection.
pub fn stories() -> CollectionPath {
    root_collection(names::STORIES)
}

/// `stories/{story_id}`
pub fn story(story_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::STORIES, "story", story_id)
}

/// `products/{product_id}/stock/{stock_key}`: the stock of one SKU (`domain::inventory::Sku::
/// stock_key`); its shards are `counter_shard(&stock, n)` = `.../stock/{key}/shards/{n}`.
pub fn stock(product_id: &str, stock_key: &str) -> Result<DocPath, PathError> {
    sub_doc(product(product_id)?, names::STOCK, "stock", stock_key)
}

// ---- infrastructure -----------------------------------------------------------------------

/// The `rate_limits` collection (one document per user, callable and window).
pub fn rate_limits() -> CollectionPath {
    root_collection(names::RATE_LIMITS)
}

/// `rate_limits/{key}`
pub fn rate_limit(key: &str) -> Result<DocPath, PathError> {
    root_doc(names::RATE_LIMITS, "rate limit", key)
}

/// The `idempotency` collection.
pub fn idempotency_records() -> CollectionPath {
    root_collection(names::IDEMPOTENCY)
}

/// `idempotency/{scoped_key}`: `scoped_key` must already be a safe document id (the ledger
/// derives it from scope and key).
pub fn idempotency(scoped_key: &str) -> Result<DocPath, PathError> {
    root_doc(names::IDEMPOTENCY, "idempotency key", scoped_key)
}

/// The `dead_letters` collection.
pub fn dead_letters() -> CollectionPath {
    root_collection(names::DEAD_LETTERS)
}

/// `dead_letters/{id}`
pub fn dead_letter(id: &str) -> Result<DocPath, PathError> {
    root_doc(names::DEAD_LETTERS, "dead letter", id)
}

/// `stream_health/{stream_id}`
pub fn stream_health(stream_id: &str) -> Result<DocPath, PathError> {
    root_doc(names::STREAM_HEALTH, "stream", stream_id)
}

/// `invitations/{email}`
pub fn invitation(email: &str) -> Result<DocPath, PathError> {
    root_doc(names::INVITATIONS, "invitation", email)
}

/// `tenant_domains/{domain}`
pub fn tenant_domain(domain: &str) -> Result<DocPath, PathError> {
    root_doc(names::TENANT_DOMAINS, "domain", domain)
}

/// `config/{name}`
pub fn config(name: &str) -> Result<DocPath, PathError> {
    root_doc(names::CONFIG, "config", name)
}

#[cfg(test)]
mod tests {

    #[test]
    fn notification_paths_parse_back() {
        assert_eq!(user_notification("u1", "n1").unwrap().relative(), "users/u1/notifications/n1");
        assert_eq!(notification_of("users/u1/notifications/n1"), Some(("u1", "n1")));
        assert_eq!(notification_of("users/u1/notifications/n1/x/y"), None);
        assert_eq!(notification_of("users/u1/signals/n1"), None);
        assert_eq!(notification_of("users//notifications/n1"), None);
        assert_eq!(signal_of("users/u1/signals/t1-open"), Some(("u1", "t1-open")));
        assert_eq!(signal_of("users/u1/notifications/n1"), None);
        assert_eq!(signal_of("users/u1/signals/s/x/y"), None);
        assert_eq!(signal_of("tenants/u1/signals/s"), None);
        assert_eq!(user_devices("u1").unwrap().relative(), "users/u1/config/devices");
        assert_eq!(follower_id_of("followers/v1:b1"), Some("v1:b1"));
        assert_eq!(follower_id_of("followers/v1:b1/x/y"), None);
        assert_eq!(follower_id_of("posts/p1"), None);
    }

    #[test]
    fn post_ids_come_only_from_top_level_post_paths() {
        assert_eq!(post_id_of("posts/p1"), Some("p1"));
        assert_eq!(post_id_of("posts/"), None);
        assert_eq!(post_id_of("posts/p1/likes/u1"), None);
        assert_eq!(post_id_of("feeds/u1/posts/p1"), None);
        assert_eq!(post_id_of("postsx/p1"), None);
        assert_eq!(post_id_of("posts/__p__"), None);
    }

    #[test]
    fn candles_come_only_from_four_segment_candle_paths() {
        assert_eq!(
            candle_of("candles/EUR_USD/H1/2026-01-05T13:00:00Z"),
            Some(("EUR_USD", "H1", "2026-01-05T13:00:00Z"))
        );
        assert_eq!(candle_of("candles/EUR_USD/H1"), None);
        assert_eq!(candle_of("candles/EUR_USD/H1/t/x/y"), None);
        assert_eq!(candle_of("candlesx/EUR_USD/H1/t"), None);
        assert_eq!(candle_of("candles/EUR_USD/H1/__t__"), None);
        assert_eq!(candle_of("streams/EUR_USD_H1/bars/t"), None);
    }

    use super::*;

    const ROOT: &str = "projects/p/databases/(default)/documents";

    #[test]
    fn every_path_of_the_data_model() {
        let cases: Vec<(DocPath, &str)> = vec![
            (tenant("t1").unwrap(), "tenants/t1"),
            (tenant_member("t1", "u1").unwrap(), "tenants/t1/users/u1"),
            (ledger_trade("t1", "tr1").unwrap(), "tenants/t1/ledger_trades/tr1"),
            (strategy("t1", "s1").unwrap(), "tenants/t1/strategies/s1"),
            (user("u1").unwrap(), "users/u1"),
            (user_alpaca_secret("u1").unwrap(), "users/u1/secrets/alpaca"),
            (user_alpaca_snapshot("u1").unwrap(), "users/u1/alpacaAccounts/snapshot"),
            (user_trading_status("u1").unwrap(), "users/u1/status/trading"),
            (user_preferences("u1").unwrap(), "users/u1/config/preferences"),
            (shadow_trade("u1", "x").unwrap(), "users/u1/shadowTradeHistory/x"),
            (signal("u1", "x").unwrap(), "users/u1/signals/x"),
            (candle("EUR_USD", "H1", "1700000000").unwrap(), "candles/EUR_USD/H1/1700000000"),
            (vendor("v1").unwrap(), "vendors/v1"),
            (product("p1").unwrap(), "products/p1"),
            (post("p1").unwrap(), "posts/p1"),
            (follower("f1").unwrap(), "followers/f1"),
            (feed_post("u1", "p1").unwrap(), "feeds/u1/posts/p1"),
            (reservation("r1").unwrap(), "reservations/r1"),
            (order("o1").unwrap(), "orders/o1"),
            (payment("pay1").unwrap(), "payments/pay1"),
            (counter_shard(&product("p1").unwrap(), 7), "products/p1/shards/7"),
            (
                field_counter_shard(&post("p1").unwrap(), "likes", 3).unwrap(),
                "posts/p1/shards/likes_3",
            ),
            (post_like("p1", "u1").unwrap(), "posts/p1/likes/u1"),
            (post_view("p1", "u1").unwrap(), "posts/p1/views/u1"),
            (follow("v1", "b1").unwrap(), "followers/v1:b1"),
            (story("s1").unwrap(), "stories/s1"),
            (idempotency("s:k:abc").unwrap(), "idempotency/s:k:abc"),
            (dead_letter("d1").unwrap(), "dead_letters/d1"),
            (stream_health("st").unwrap(), "stream_health/st"),
            (stream_bar("EUR_USD_H1", "t").unwrap(), "streams/EUR_USD_H1/bars/t"),
            (invitation("a@b.example").unwrap(), "invitations/a@b.example"),
            (tenant_domain("b.example").unwrap(), "tenant_domains/b.example"),
            (config("flags").unwrap(), "config/flags"),
        ];
        for (path, relative) in cases {
            assert_eq!(path.relative(), relative);
            // Documents have an even number of segments.
            assert_eq!(relative.split('/').count() % 2, 0, "{relative}");
            assert_eq!(path.full_name(ROOT), format!("{ROOT}/{relative}"));
            let (parent, id) = relative.rsplit_once('/').unwrap();
            assert_eq!(path.id(), id);
            assert_eq!(path.collection().to_string(), parent);
            let parent_doc = parent.rsplit_once('/').map(|(doc, _)| doc);
            let expected_parent = parent_doc.map_or(ROOT.to_owned(), |d| format!("{ROOT}/{d}"));
            assert_eq!(path.parent_name(ROOT), expected_parent);
        }
    }

    #[test]
    fn collections_and_subcollections() {
        assert_eq!(feed("u1").unwrap().to_string(), "feeds/u1/posts");
        assert_eq!(feed("u1").unwrap().full_name(ROOT), format!("{ROOT}/feeds/u1/posts"));
        assert_eq!(tenant_members("t").unwrap().to_string(), "tenants/t/users");
        assert_eq!(candle_series("X", "D").unwrap().to_string(), "candles/X/D");
        assert_eq!(counter_shards(&post("p").unwrap()).to_string(), "posts/p/shards");
        assert_eq!(products().doc("p9").unwrap(), product("p9").unwrap());
        let sub = user("u").unwrap().sub("notes").unwrap().doc("n").unwrap();
        assert_eq!(sub.relative(), "users/u/notes/n");
        assert_eq!(CollectionPath::root("tenants").unwrap(), tenants());
        for c in
            [users(), posts(), followers(), reservations(), idempotency_records(), dead_letters()]
        {
            assert_eq!(c.parent_name(ROOT), ROOT);
        }
    }

    #[test]
    fn invalid_ids_are_refused() {
        assert_eq!(tenant(""), Err(PathError::Empty { what: "tenant" }));
        assert_eq!(user("a/b"), Err(PathError::Slash { what: "user" }));
        assert_eq!(post("."), Err(PathError::Dots { what: "post" }));
        assert_eq!(post(".."), Err(PathError::Dots { what: "post" }));
        assert_eq!(order("__id__"), Err(PathError::Reserved { what: "order" }));
        assert!(order("__").is_ok(), "too short to match __.*__");
        assert!(order("__x").is_ok());
        assert!(matches!(payment(&"x".repeat(1501)), Err(PathError::TooLong { len: 1501, .. })));
        assert!(payment(&"x".repeat(1500)).is_ok());
        assert!(tenant_member("t", "").is_err());
        assert!(tenant_member("", "u").is_err());
        assert!(candle("X", "a/b", "1").is_err());
        assert!(candle("X", "H1", "").is_err());
        assert!(user("u").unwrap().sub("__x__").is_err());
        assert!(feed_post("u/1", "p").is_err());
        // Non-ASCII ids are fine and counted in bytes.
        assert!(user(&"é".repeat(750)).is_ok());
        assert!(user(&"é".repeat(751)).is_err());
    }
}
