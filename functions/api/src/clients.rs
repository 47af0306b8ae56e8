//! What client apps see, as TypeScript: every callable's request and result, the `details` of
//! its documented errors, and the documents clients read directly under `firestore.rules`.
//!
//! The declarations are generated with `ts-rs` from the Rust types the callables parse and
//! answer with, into `clients/ts/generated/`. The test `generated_client_types_are_current`
//! regenerates them and fails when the committed files differ, so a renamed field fails the
//! suite instead of a client app in production. After changing a type, rewrite them with
//! `HEARTH_WRITE_CLIENT_TYPES=1 cargo test -p api generated_client_types`.
//!
//! The document types ([`OrderDocument`], [`FeedEntryDocument`]) describe what `store` writes
//! (Firestore timestamps included, as the JS SDK returns them); the api's integration test
//! `client_documents.rs` reads documents written by the real code paths and decodes them into
//! these types with unknown fields refused, so they cannot drift from the stored shape either.
//! Notifications do not exist yet: there is no notification document to describe.

use domain::feed::FeedSource;
use domain::inventory::ReservationStatus;
use domain::messages::PaymentProvider;
use domain::payments::{OrderStatus, Watermark};
use domain::refunds::{RefundStatus, Requester};
use serde::Deserialize;
use ts_rs::TS;

/// A Firestore timestamp field of a stored document (any decoded value: the check is about
/// which fields exist; the TypeScript side is the SDK's `Timestamp`).
#[derive(Debug, Clone, Deserialize)]
pub struct Timestamp(pub serde_json::Value);

/// `orders/{orderId}`, readable by its buyer (`uid == request.auth.uid`). Written only by the
/// functions; listen to it to see a payment land (`status` becomes `paid`).
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct OrderDocument {
    /// The order id (also the document id).
    pub id: String,
    /// The buyer.
    pub uid: String,
    pub items: Vec<OrderDocumentItem>,
    /// Total, minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    pub status: OrderStatus,
    /// Server bookkeeping (the last provider event applied); do not rely on it.
    pub watermark: Option<Watermark>,
    /// Server bookkeeping: how many events changed the status.
    pub state_changes: u32,
    /// Payment attempts, oldest first.
    pub payments: Vec<OrderDocumentPayment>,
    /// The latest attempt.
    pub current_payment_id: Option<String>,
    /// Paid with no stock left: the money goes back.
    pub refund_requested: bool,
    /// Refunded so far by partial refunds, minor units.
    pub refunded_minor: i64,
    /// Server bookkeeping: the provider event that made the last change.
    pub last_event_id: Option<String>,
    /// The vendors of the items.
    pub vendor_ids: Vec<String>,
    /// Refunds asked for, oldest first.
    pub refunds: Vec<OrderDocumentRefund>,
    /// Server bookkeeping: the provider event that last raised `refunded_minor`.
    pub last_refund_event_id: Option<String>,
    /// Server bookkeeping: by how much that event raised it.
    pub last_refund_minor: i64,
    #[ts(type = "import(\"firebase/firestore\").Timestamp")]
    pub created_at: Timestamp,
    #[ts(type = "import(\"firebase/firestore\").Timestamp")]
    pub updated_at: Timestamp,
}

/// One line of an [`OrderDocument`].
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct OrderDocumentItem {
    /// The reservation holding the units (`reservations/{id}`, readable by the buyer).
    pub reservation_id: String,
    pub product_id: String,
    pub variant_id: Option<String>,
    pub quantity: i64,
    /// Price per unit, minor units.
    pub unit_price_minor: i64,
    /// The product's vendor.
    pub vendor_id: Option<String>,
}

/// A refund of an [`OrderDocument`].
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct OrderDocumentRefund {
    pub refund_id: String,
    /// Minor units.
    pub amount_minor: i64,
    /// Who asked (uid; empty for a refund the system made).
    pub requested_by: String,
    pub requester: Requester,
    pub status: RefundStatus,
    /// The provider's refund id, once it accepted.
    pub provider_refund_id: Option<String>,
    /// Why the provider refused, if it did.
    pub failure: Option<String>,
}

/// A payment attempt of an [`OrderDocument`].
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct OrderDocumentPayment {
    /// `payments/{paymentId}`, readable by the buyer.
    pub payment_id: String,
    pub provider: PaymentProvider,
    /// The provider's id (Stripe PaymentIntent, Pesapal tracking id), once it answered.
    pub provider_payment_id: Option<String>,
}

/// `feeds/{uid}/posts/{postId}`: one entry of the user's precomputed feed, readable (and
/// listenable) by that user only. The post itself is `posts/{postId}`; `getFeed` also merges
/// posts of high-follower vendors, which are never written into feeds.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedEntryDocument {
    pub post_id: String,
    pub vendor_id: String,
    #[ts(type = "import(\"firebase/firestore\").Timestamp")]
    pub created_at: Timestamp,
    /// The entry disappears after this (a TTL policy deletes it).
    #[ts(type = "import(\"firebase/firestore\").Timestamp")]
    pub expires_at: Timestamp,
    /// The same instant as `expiresAt`, the field the TTL policy watches.
    #[ts(type = "import(\"firebase/firestore\").Timestamp")]
    pub ttl_at: Timestamp,
    /// Rank, higher first (`orderBy("score", "desc")`).
    pub score: i64,
    pub source: FeedSource,
}

/// One callable: its name and the TypeScript names of its data and result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallableTypes {
    pub name: &'static str,
    /// `null` for a callable that takes no data.
    pub request: String,
    pub result: String,
}

/// Every callable of the api with its types, in route order.
pub fn callables() -> Vec<CallableTypes> {
    use crate::catalogue::callables as cat;
    use crate::catalogue::orders as ord;
    use crate::devices as dev;
    use crate::feed::{read, write};
    use crate::payments::callables as pay;
    use crate::strategies as strat;
    let cfg = config();
    let entry = |name, request: String, result: String| CallableTypes { name, request, result };
    vec![
        entry("reserveInventory", pay::ReserveRequest::name(&cfg), pay::Reserved::name(&cfg)),
        entry("releaseReservation", pay::ReleaseRequest::name(&cfg), pay::Released::name(&cfg)),
        entry("initiatePayment", pay::InitiateRequest::name(&cfg), pay::Initiated::name(&cfg)),
        entry("getOrder", pay::GetOrderRequest::name(&cfg), pay::OrderView::name(&cfg)),
        entry(
            "getFeed",
            format!("{} | null", read::GetFeed::name(&cfg)),
            read::FeedAnswer::name(&cfg),
        ),
        entry("followVendor", write::VendorRequest::name(&cfg), write::Followed::name(&cfg)),
        entry("unfollowVendor", write::VendorRequest::name(&cfg), write::Unfollowed::name(&cfg)),
        entry("getStories", "null".to_owned(), read::StoriesAnswer::name(&cfg)),
        entry("likePost", write::PostRequest::name(&cfg), write::Liked::name(&cfg)),
        entry("unlikePost", write::PostRequest::name(&cfg), write::Liked::name(&cfg)),
        entry("recordView", write::PostRequest::name(&cfg), write::Viewed::name(&cfg)),
        entry("saveStrategy", strat::SaveStrategy::name(&cfg), strat::Saved::name(&cfg)),
        entry("registerDevice", dev::RegisterRequest::name(&cfg), dev::Devices::name(&cfg)),
        entry("unregisterDevice", dev::UnregisterRequest::name(&cfg), dev::Devices::name(&cfg)),
        entry("becomeVendor", cat::BecomeVendorRequest::name(&cfg), cat::VendorView::name(&cfg)),
        entry("updateVendor", cat::UpdateVendorRequest::name(&cfg), cat::VendorView::name(&cfg)),
        entry("createProduct", cat::ProductFields::name(&cfg), cat::ProductView::name(&cfg)),
        entry("updateProduct", cat::UpdateProductRequest::name(&cfg), cat::ProductView::name(&cfg)),
        entry("publishProduct", cat::ProductIdRequest::name(&cfg), cat::ProductView::name(&cfg)),
        entry("archiveProduct", cat::ProductIdRequest::name(&cfg), cat::ProductView::name(&cfg)),
        entry("setStock", cat::StockRequest::name(&cfg), cat::StockView::name(&cfg)),
        entry("addStock", cat::StockRequest::name(&cfg), cat::StockView::name(&cfg)),
        entry(
            "listProducts",
            format!("{} | null", cat::ListProductsRequest::name(&cfg)),
            cat::ProductPage::name(&cfg),
        ),
        entry(
            "listVendorOrders",
            format!("{} | null", ord::ListVendorOrdersRequest::name(&cfg)),
            ord::VendorOrderPage::name(&cfg),
        ),
        entry(
            "getVendorSales",
            ord::GetVendorSalesRequest::name(&cfg),
            ord::SalesAnswer::name(&cfg),
        ),
        entry("requestRefund", ord::RequestRefundRequest::name(&cfg), ord::RefundView::name(&cfg)),
    ]
}

/// How the declarations are written: 64-bit integers are JSON numbers on the wire (every
/// value the api sends fits in 2^53), not `bigint`; imports name `.js` files, as ES modules
/// in Node need and bundlers accept.
fn config() -> ts_rs::Config {
    ts_rs::Config::new().with_large_int("number").with_import_extension(Some("js".to_owned()))
}

/// The generated files, name -> contents: one file per type (ts-rs), `callables.ts` (the map
/// the typed wrapper is built on) and `index.ts` re-exporting everything.
pub fn generated_files() -> Result<std::collections::BTreeMap<String, String>, ts_rs::ExportError> {
    use crate::catalogue::callables as cat;
    use crate::catalogue::orders as ord;
    use crate::devices as dev;
    use crate::feed::{read, write};
    use crate::payments::callables as pay;
    use crate::strategies as strat;
    use std::collections::BTreeMap;

    let cfg = config();
    let mut files = BTreeMap::new();
    macro_rules! export {
        ($($ty:ty),* $(,)?) => {$(
            let path = <$ty as TS>::output_path().expect("derived types have a path");
            files.insert(
                path.to_string_lossy().into_owned(),
                <$ty as TS>::export_to_string(&cfg)?,
            );
        )*};
    }
    export!(
        pay::ReserveRequest,
        pay::Reserved,
        pay::SoldOutDetails,
        pay::HoldCapDetails,
        pay::ReleaseRequest,
        pay::Released,
        pay::ReleaseStatus,
        pay::InitiateRequest,
        pay::Initiated,
        pay::GetOrderRequest,
        pay::OrderView,
        pay::ItemView,
        pay::PaymentView,
        read::GetFeed,
        read::FeedAnswer,
        read::FeedPost,
        read::StoriesAnswer,
        read::StoryGroup,
        read::Story,
        write::VendorRequest,
        write::PostRequest,
        write::Followed,
        write::Unfollowed,
        write::Liked,
        write::Viewed,
        strat::SaveStrategy,
        strat::Saved,
        dev::RegisterRequest,
        dev::UnregisterRequest,
        dev::Devices,
        domain::notify::Platform,
        domain::pulse::Strategy,
        domain::pulse::EntrySignal,
        domain::pulse::Sides,
        cat::BecomeVendorRequest,
        cat::UpdateVendorRequest,
        cat::VendorView,
        cat::VariantView,
        cat::ProductFields,
        cat::ProductView,
        cat::UpdateProductRequest,
        cat::ProductIdRequest,
        cat::StockRequest,
        cat::StockView,
        cat::ListProductsRequest,
        cat::ProductPage,
        ord::ListVendorOrdersRequest,
        ord::VendorLine,
        ord::VendorOrder,
        ord::VendorOrderPage,
        ord::GetVendorSalesRequest,
        ord::SalesDay,
        ord::SalesAnswer,
        ord::RequestRefundRequest,
        ord::RefundView,
        ord::RefundableDetails,
        domain::refunds::RefundStatus,
        domain::refunds::Requester,
        OrderDocumentRefund,
        domain::catalogue::ProductStatus,
        OrderDocument,
        OrderDocumentItem,
        OrderDocumentPayment,
        FeedEntryDocument,
        OrderStatus,
        PaymentProvider,
        ReservationStatus,
        FeedSource,
        Watermark,
        domain::status::Code,
    );

    let callables = callables();
    let mut imports: Vec<&str> = callables
        .iter()
        .flat_map(|c| [c.request.as_str(), c.result.as_str()])
        .map(|name| name.trim_end_matches(" | null"))
        .filter(|name| *name != "null")
        .collect();
    imports.sort_unstable();
    imports.dedup();
    let mut map = String::from(
        "// Generated by the api crate (functions/api/src/clients.rs); do not edit.\n\n",
    );
    for name in &imports {
        map.push_str(&format!("import type {{ {name} }} from \"./{name}.js\";\n"));
    }
    map.push_str(
        "\n/** Every callable of the api: its `data` and its `result`. */\nexport interface Callables {\n",
    );
    for c in &callables {
        map.push_str(&format!(
            "  {}: {{ request: {}; result: {} }};\n",
            c.name, c.request, c.result
        ));
    }
    map.push_str(
        "}\n\n/** The callable names, in route order. */\nexport const CALLABLE_NAMES = [\n",
    );
    for c in &callables {
        map.push_str(&format!("  \"{}\",\n", c.name));
    }
    map.push_str("] as const satisfies readonly (keyof Callables)[];\n");
    files.insert("callables.ts".to_owned(), map);

    let mut index = String::from(
        "// Generated by the api crate (functions/api/src/clients.rs); do not edit.\n\n",
    );
    for file in files.keys() {
        let module = file.trim_end_matches(".ts");
        if module == "callables" {
            index.push_str("export { CALLABLE_NAMES } from \"./callables.js\";\n");
            index.push_str("export type { Callables } from \"./callables.js\";\n");
        } else {
            index.push_str(&format!("export type {{ {module} }} from \"./{module}.js\";\n"));
        }
    }
    files.insert("index.ts".to_owned(), index);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    fn generated_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/ts/generated")
    }

    fn committed() -> BTreeMap<String, String> {
        let Ok(entries) = std::fs::read_dir(generated_dir()) else { return BTreeMap::new() };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .collect()
    }

    /// The committed TypeScript is what the Rust types produce (CI fails on stale files).
    /// `HEARTH_WRITE_CLIENT_TYPES=1` rewrites them instead.
    #[test]
    fn generated_client_types_are_current() {
        let fresh = generated_files().unwrap();
        // A developer switch of this test only; configuration proper goes through runtime.
        #[allow(clippy::disallowed_methods)]
        let write = std::env::var_os("HEARTH_WRITE_CLIENT_TYPES").is_some();
        if write {
            let dir = generated_dir();
            std::fs::create_dir_all(&dir).unwrap();
            for name in committed().keys() {
                std::fs::remove_file(dir.join(name)).unwrap();
            }
            for (name, text) in &fresh {
                std::fs::write(dir.join(name), text).unwrap();
            }
        }
        let committed = committed();
        let stale: Vec<String> = fresh
            .iter()
            .filter(|(name, text)| committed.get(*name) != Some(*text))
            .map(|(name, _)| format!("{name}: differs or is missing"))
            .chain(
                committed
                    .keys()
                    .filter(|name| !fresh.contains_key(*name))
                    .map(|name| format!("{name}: no Rust type produces it")),
            )
            .collect();
        assert!(
            stale.is_empty(),
            "clients/ts/generated is stale; run `HEARTH_WRITE_CLIENT_TYPES=1 cargo test -p api \
             generated_client_types` and commit the result:\n{}",
            stale.join("\n")
        );
    }

    /// The typed map names every route the api serves, and nothing else.
    #[test]
    fn every_callable_has_its_types() {
        let mut typed: Vec<String> = callables().iter().map(|c| format!("/{}", c.name)).collect();
        let mut served: Vec<String> = crate::payments::PATHS
            .iter()
            .chain(crate::feed::PATHS.iter())
            .chain(crate::strategies::PATHS.iter())
            .chain(crate::catalogue::PATHS.iter())
            .chain(crate::devices::PATHS.iter())
            .map(|p| (*p).to_owned())
            .collect();
        typed.sort();
        served.sort();
        assert_eq!(typed, served);
    }

    /// The declarations follow serde: camelCase where the wire is camelCase, optional fields
    /// as `?`, 64-bit integers as numbers, the key carried in data.
    #[test]
    fn declarations_follow_the_wire() {
        let files = generated_files().unwrap();
        let request = &files["InitiatePaymentRequest.ts"];
        assert!(request.contains("reservationIds: Array<string>"), "{request}");
        assert!(request.contains("idempotencyKey?: string"), "{request}");
        let result = &files["InitiatePaymentResult.ts"];
        assert!(result.contains("amountMinor: number"), "{result}");
        assert!(result.contains("replayed: boolean"), "{result}");
        assert!(
            files["OrderDocument.ts"]
                .contains("created_at: import(\"firebase/firestore\").Timestamp")
        );
        assert!(files["Code.ts"].contains("\"RESOURCE_EXHAUSTED\""));
    }
}
