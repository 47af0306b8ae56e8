//! The catalogue: vendors, their handles and their products (shapes in `domain::catalogue`).
//!
//! ```text
//! vendors/{uid}             { name, handle, avatar_url, created_at, updated_at }
//! vendor_handles/{handle}   { vendor_id, created_at }
//! products/{productId}      { vendor_id, vendor_name, vendor_avatar_url, title, description,
//!                             category, tags, images, price_minor, currency, variants,
//!                             status, in_stock, created_at, updated_at }
//! ```
//!
//! - A user becomes a vendor once: [`Catalogue::become_vendor`] creates `vendors/{uid}` and
//!   claims `vendor_handles/{handle}` in ONE transaction, so two users can never hold one
//!   handle and a vendor never exists without its claim.
//! - [`Catalogue::update_vendor`] rewrites the profile, then copies the name and avatar onto
//!   the vendor's products: pages of [`SYNC_PAGE`] products (`vendor_id ==`, ordered by
//!   document name, one query and one commit of field-masked updates per page, at most
//!   [`SYNC_MAX_PAGES`] pages per call). Each write sets the values the profile has now, so a
//!   retry after a partial failure converges on the same state (idempotent).
//! - Products are written only by their vendor, checked in the transaction that writes them.
//! - [`Catalogue::list_active`] is the buyers' listing: `status == active`, optionally
//!   `category ==` and / or `vendor_id ==`, a price range, ordered by `price_minor` then name,
//!   resumed strictly after a `(price, id)` cursor (stable under inserts). Indexes:
//!   `products(status, [category,] [vendor_id,] price_minor)`.
//! - Availability for listings is the product's `in_stock` summary, written whenever the
//!   product's stock is set or added to and when a reservation finds a SKU sold out
//!   ([`Catalogue::refresh_in_stock`]): a listing reads no stock shard.

use chrono::{DateTime, Utc};
use domain::catalogue::{Product, ProductDraft, ProductStatus, Vendor};
use domain::inventory::Sku;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use firestore::gcloud_sdk::google::firestore::v1::{
    Document, DocumentMask, Precondition, Write, precondition, write,
};
use serde::{Deserialize, Serialize};

use crate::db::{Db, decode, encode};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::paths::{self, DocPath};
use crate::rpc::{self, NAME};

/// Products per page when a vendor's profile change is copied onto its products.
pub const SYNC_PAGE: u32 = 200;
/// Pages per profile change (so at most `SYNC_PAGE * SYNC_MAX_PAGES` products per call).
pub const SYNC_MAX_PAGES: u32 = 50;
/// Most products one listing page returns.
pub const MAX_PAGE: u32 = 50;

/// `vendor_handles/{handle}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HandleClaim {
    vendor_id: String,
}

/// What [`Catalogue::become_vendor`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BecomeVendor {
    /// The vendor profile was created now.
    Created(Vendor),
    /// The user was a vendor already (the stored profile; nothing changed).
    Already(Vendor),
    /// Another vendor holds the handle.
    HandleTaken,
}

/// Why a product write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductRefused {
    /// No such product.
    NotFound,
    /// The product belongs to another vendor.
    NotOwner,
    /// The caller has no vendor profile.
    NotVendor,
    /// Archived products are never changed again.
    Archived,
    /// The product exists already (a create with a used id).
    Exists,
    /// The variant named is not one of the product's (or the product has variants and none
    /// was named).
    UnknownVariant,
}

/// A listing query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Listing {
    /// `category ==`.
    pub category: Option<String>,
    /// `vendor_id ==`.
    pub vendor_id: Option<String>,
    /// `price_minor >=`.
    pub min_price: Option<i64>,
    /// `price_minor <=`.
    pub max_price: Option<i64>,
    /// Resume strictly after this `(price_minor, product id)`.
    pub after: Option<(i64, String)>,
    /// Page size, 1 to [`MAX_PAGE`].
    pub limit: u32,
}

/// Catalogue operations on one database.
#[derive(Debug, Clone)]
pub struct Catalogue {
    db: Db,
    inventory: Inventory,
}

fn stamp(doc: &mut Document, field: &str, at: DateTime<Utc>) {
    doc.fields.insert(field.to_owned(), rpc::timestamp(at));
}

fn exists(exists: bool) -> Option<Precondition> {
    Some(Precondition { condition_type: Some(precondition::ConditionType::Exists(exists)) })
}

impl Catalogue {
    /// The catalogue on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone(), inventory: Inventory::new(db) }
    }

    /// `vendors/{uid}`.
    pub async fn vendor(&self, uid: &str) -> Result<Option<Vendor>, Error> {
        self.db.get(&paths::vendor(uid)?).await
    }

    /// `products/{id}`.
    pub async fn product(&self, id: &str) -> Result<Option<Product>, Error> {
        self.db.get(&paths::product(id)?).await
    }

    /// Makes `uid` a vendor with `profile` (see the module docs). Validate first.
    pub async fn become_vendor(
        &self,
        uid: &str,
        profile: &Vendor,
        now: DateTime<Utc>,
    ) -> Result<BecomeVendor, Error> {
        let vendor_path = paths::vendor(uid)?;
        let handle_path = paths::vendor_handle(&profile.handle)?;
        let (vendor_path, handle_path) = (&vendor_path, &handle_path);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let (existing, claim): (Option<Vendor>, Option<HandleClaim>) = {
                        let docs =
                            tx.get_documents(&[vendor_path.clone(), handle_path.clone()]).await?;
                        let mut docs = docs.into_iter();
                        let v =
                            docs.next().flatten().map(|d| decode(vendor_path, &d)).transpose()?;
                        let c =
                            docs.next().flatten().map(|d| decode(handle_path, &d)).transpose()?;
                        (v, c)
                    };
                    if let Some(vendor) = existing {
                        return Ok(BecomeVendor::Already(vendor));
                    }
                    if claim.is_some_and(|c| c.vendor_id != uid) {
                        return Ok(BecomeVendor::HandleTaken);
                    }
                    let root = tx.db().documents_root().to_owned();
                    let mut vendor = encode(vendor_path, &root, profile)?;
                    stamp(&mut vendor, "created_at", now);
                    stamp(&mut vendor, "updated_at", now);
                    let mut handle =
                        encode(handle_path, &root, &HandleClaim { vendor_id: uid.to_owned() })?;
                    stamp(&mut handle, "created_at", now);
                    for doc in [vendor, handle] {
                        tx.push_write(Write {
                            operation: Some(write::Operation::Update(doc)),
                            current_document: exists(false),
                            ..Default::default()
                        });
                    }
                    Ok::<_, Error>(BecomeVendor::Created(profile.clone()))
                })
            })
            .await
    }

    /// Changes the vendor's display name and avatar, then copies them onto its products (see
    /// the module docs). `None` when `uid` is not a vendor; otherwise the products updated.
    pub async fn update_vendor(
        &self,
        uid: &str,
        name: &str,
        avatar_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, Error> {
        let path = paths::vendor(uid)?;
        let path = &path;
        let updated = self
            .db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut vendor) = tx.get::<Vendor>(path).await? else {
                        return Ok(false);
                    };
                    vendor.name = name.to_owned();
                    vendor.avatar_url = avatar_url.map(str::to_owned);
                    let mut doc = encode(path, tx.db().documents_root(), &vendor)?;
                    stamp(&mut doc, "updated_at", now);
                    tx.push_write(Write {
                        operation: Some(write::Operation::Update(doc)),
                        update_mask: Some(DocumentMask {
                            field_paths: vec![
                                "name".into(),
                                "avatar_url".into(),
                                "updated_at".into(),
                            ],
                        }),
                        current_document: exists(true),
                        ..Default::default()
                    });
                    Ok::<_, Error>(true)
                })
            })
            .await?;
        if !updated {
            return Ok(None);
        }
        Ok(Some(self.sync_vendor_fields(uid, name, avatar_url, now).await?))
    }

    /// Copies the vendor's name and avatar onto its products, page by page.
    async fn sync_vendor_fields(
        &self,
        uid: &str,
        name: &str,
        avatar_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let root = self.db.documents_root().to_owned();
        let mut after: Option<String> = None;
        let mut written = 0u64;
        for _ in 0..SYNC_MAX_PAGES {
            let mut query = rpc::from(paths::names::PRODUCTS, false);
            query.r#where = rpc::and(vec![rpc::eq("vendor_id", rpc::string(uid))]);
            query.order_by = vec![rpc::asc(NAME)];
            query.select = rpc::select(&[NAME]);
            query.start_at =
                after.take().map(|name| rpc::cursor(vec![rpc::reference(name)], false));
            query.limit = Some(i32::try_from(SYNC_PAGE).unwrap_or(i32::MAX));
            let docs = rpc::run(&self.db, root.clone(), query).await?;
            let full = docs.len() as u64 == u64::from(SYNC_PAGE);
            let mut writes = Vec::with_capacity(docs.len());
            for doc in &docs {
                let mut fields = std::collections::HashMap::new();
                fields.insert("vendor_name".to_owned(), rpc::string(name));
                fields.insert(
                    "vendor_avatar_url".to_owned(),
                    avatar_url.map_or_else(rpc::null, rpc::string),
                );
                fields.insert("updated_at".to_owned(), rpc::timestamp(now));
                writes.push(Write {
                    operation: Some(write::Operation::Update(Document {
                        name: doc.name.clone(),
                        fields,
                        ..Default::default()
                    })),
                    update_mask: Some(DocumentMask {
                        field_paths: vec![
                            "vendor_name".into(),
                            "vendor_avatar_url".into(),
                            "updated_at".into(),
                        ],
                    }),
                    current_document: exists(true),
                    ..Default::default()
                });
            }
            written += writes.len() as u64;
            after = docs.last().map(|d| d.name.clone());
            if !writes.is_empty() {
                self.db.commit(writes).await?;
            }
            if !full {
                return Ok(written);
            }
        }
        tracing::warn!(
            vendor = uid,
            written,
            "vendor has more products than one profile sync copies; the rest keep the old name until the next change"
        );
        Ok(written)
    }

    /// Creates `products/{id}` as a draft of vendor `uid`, with the vendor fields copied from
    /// the profile.
    pub async fn create_product(
        &self,
        uid: &str,
        id: &str,
        draft: &ProductDraft,
        now: DateTime<Utc>,
    ) -> Result<Result<Product, ProductRefused>, Error> {
        let product_path = paths::product(id)?;
        let vendor_path = paths::vendor(uid)?;
        let (product_path, vendor_path) = (&product_path, &vendor_path);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let docs =
                        tx.get_documents(&[vendor_path.clone(), product_path.clone()]).await?;
                    let mut docs = docs.into_iter();
                    let Some(vendor) = docs
                        .next()
                        .flatten()
                        .map(|d| decode::<Vendor>(vendor_path, &d))
                        .transpose()?
                    else {
                        return Ok(Err(ProductRefused::NotVendor));
                    };
                    if docs.next().flatten().is_some() {
                        return Ok(Err(ProductRefused::Exists));
                    }
                    let product = Product {
                        vendor_id: uid.to_owned(),
                        vendor_name: vendor.name,
                        vendor_avatar_url: vendor.avatar_url,
                        title: draft.title.clone(),
                        description: draft.description.clone(),
                        category: draft.category.clone(),
                        tags: draft.tags.clone(),
                        images: draft.images.clone(),
                        price_minor: draft.price_minor,
                        currency: draft.currency.clone(),
                        variants: draft.variants.clone(),
                        status: ProductStatus::Draft,
                        in_stock: false,
                    };
                    let mut doc = encode(product_path, tx.db().documents_root(), &product)?;
                    stamp(&mut doc, "created_at", now);
                    stamp(&mut doc, "updated_at", now);
                    tx.push_write(Write {
                        operation: Some(write::Operation::Update(doc)),
                        current_document: exists(false),
                        ..Default::default()
                    });
                    Ok::<_, Error>(Ok(product))
                })
            })
            .await
    }

    /// Reads `products/{id}` in a transaction, checks that `uid` owns it and that it is not
    /// archived, applies `change` and writes the product's fields back (timestamps kept).
    async fn change_product(
        &self,
        uid: &str,
        id: &str,
        now: DateTime<Utc>,
        change: &(dyn Fn(&mut Product) + Sync),
    ) -> Result<Result<Product, ProductRefused>, Error> {
        let path = paths::product(id)?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut product) = tx.get::<Product>(path).await? else {
                        return Ok(Err(ProductRefused::NotFound));
                    };
                    if product.vendor_id != uid {
                        return Ok(Err(ProductRefused::NotOwner));
                    }
                    if product.status == ProductStatus::Archived {
                        return Ok(Err(ProductRefused::Archived));
                    }
                    change(&mut product);
                    tx.push_write(product_update(tx.db(), path, &product, now)?);
                    Ok::<_, Error>(Ok(product))
                })
            })
            .await
    }

    /// Replaces what the vendor writes about its product (not its status or stock).
    pub async fn update_product(
        &self,
        uid: &str,
        id: &str,
        draft: &ProductDraft,
        now: DateTime<Utc>,
    ) -> Result<Result<Product, ProductRefused>, Error> {
        self.change_product(uid, id, now, &|p| {
            p.title.clone_from(&draft.title);
            p.description.clone_from(&draft.description);
            p.category.clone_from(&draft.category);
            p.tags.clone_from(&draft.tags);
            p.images.clone_from(&draft.images);
            p.price_minor = draft.price_minor;
            p.currency.clone_from(&draft.currency);
            p.variants.clone_from(&draft.variants);
        })
        .await
    }

    /// Moves the product to `status` (`active`: listed; `archived`: withdrawn for good).
    pub async fn set_status(
        &self,
        uid: &str,
        id: &str,
        status: ProductStatus,
        now: DateTime<Utc>,
    ) -> Result<Result<Product, ProductRefused>, Error> {
        self.change_product(uid, id, now, &|p| p.status = status).await
    }

    /// The SKU `variant_id` of the product, checked against its variants and its owner.
    async fn owned_sku(
        &self,
        uid: &str,
        product_id: &str,
        variant_id: Option<&str>,
    ) -> Result<Result<(Product, Sku), ProductRefused>, Error> {
        let Some(product) = self.product(product_id).await? else {
            return Ok(Err(ProductRefused::NotFound));
        };
        if product.vendor_id != uid {
            return Ok(Err(ProductRefused::NotOwner));
        }
        if product.status == ProductStatus::Archived {
            return Ok(Err(ProductRefused::Archived));
        }
        if domain::catalogue::unit_price(&product, variant_id).is_none() {
            return Ok(Err(ProductRefused::UnknownVariant));
        }
        let sku =
            Sku { product_id: product_id.to_owned(), variant_id: variant_id.map(str::to_owned) };
        Ok(Ok((product, sku)))
    }

    /// Sets the stock of one SKU of the vendor's product to `units` (replacing the count: an
    /// initial listing or a stock-take; see `Inventory::set_stock`). Answers the shards used.
    pub async fn set_stock(
        &self,
        uid: &str,
        product_id: &str,
        variant_id: Option<&str>,
        units: i64,
        shards: u32,
    ) -> Result<Result<u32, ProductRefused>, Error> {
        let (product, sku) = match self.owned_sku(uid, product_id, variant_id).await? {
            Ok(found) => found,
            Err(refused) => return Ok(Err(refused)),
        };
        self.inventory.set_stock(&sku, units, shards).await?;
        self.note_in_stock(product_id, &product, units > 0).await?;
        Ok(Ok(shards.clamp(1, domain::inventory::MAX_SHARDS)))
    }

    /// Adds `units` to one SKU of the vendor's product, growing it to at least `shards`
    /// shards (`Inventory::add_stock`: safe while reservations run). Answers the shard count.
    pub async fn add_stock(
        &self,
        uid: &str,
        product_id: &str,
        variant_id: Option<&str>,
        units: i64,
        shards: u32,
    ) -> Result<Result<u32, ProductRefused>, Error> {
        let (product, sku) = match self.owned_sku(uid, product_id, variant_id).await? {
            Ok(found) => found,
            Err(refused) => return Ok(Err(refused)),
        };
        let count = self.inventory.add_stock(&sku, units, shards).await?;
        self.note_in_stock(product_id, &product, true).await?;
        Ok(Ok(count))
    }

    /// Writes the availability summary when it changes (one masked write, none when equal).
    async fn note_in_stock(
        &self,
        id: &str,
        product: &Product,
        in_stock: bool,
    ) -> Result<(), Error> {
        if product.in_stock == in_stock {
            return Ok(());
        }
        let path = paths::product(id)?;
        let mut fields = std::collections::HashMap::new();
        fields.insert("in_stock".to_owned(), rpc::boolean(in_stock));
        self.db
            .commit(vec![Write {
                operation: Some(write::Operation::Update(Document {
                    name: path.full_name(self.db.documents_root()),
                    fields,
                    ..Default::default()
                })),
                update_mask: Some(DocumentMask { field_paths: vec!["in_stock".into()] }),
                current_document: exists(true),
                ..Default::default()
            }])
            .await
    }

    /// Recomputes the product's `in_stock` summary from its SKUs' shards (one read of each
    /// stock document and its shards): called when a reservation finds a SKU sold out, the
    /// moment the summary may have become false.
    pub async fn refresh_in_stock(&self, id: &str) -> Result<(), Error> {
        let Some(product) = self.product(id).await? else { return Ok(()) };
        let skus: Vec<Sku> = if product.variants.is_empty() {
            vec![Sku::product(id)]
        } else {
            product.variants.iter().map(|v| Sku::variant(id, v.id.clone())).collect()
        };
        let mut any = false;
        for sku in &skus {
            if self.inventory.availability(sku).await?.is_some_and(|(units, _)| units > 0) {
                any = true;
                break;
            }
        }
        self.note_in_stock(id, &product, any).await
    }

    /// One page of active products (see the module docs), with their ids.
    pub async fn list_active(&self, listing: &Listing) -> Result<Vec<(String, Product)>, Error> {
        let mut filters = vec![rpc::eq("status", rpc::string("active"))];
        if let Some(category) = &listing.category {
            filters.push(rpc::eq("category", rpc::string(category)));
        }
        if let Some(vendor) = &listing.vendor_id {
            filters.push(rpc::eq("vendor_id", rpc::string(vendor)));
        }
        if let Some(min) = listing.min_price {
            filters.push(rpc::filter(
                "price_minor",
                Operator::GreaterThanOrEqual,
                rpc::integer(min),
            ));
        }
        if let Some(max) = listing.max_price {
            filters.push(rpc::filter("price_minor", Operator::LessThanOrEqual, rpc::integer(max)));
        }
        let mut query = rpc::from(paths::names::PRODUCTS, false);
        query.r#where = rpc::and(filters);
        query.order_by = vec![rpc::asc("price_minor"), rpc::asc(NAME)];
        if let Some((price, id)) = &listing.after {
            let name = paths::product(id)?.full_name(self.db.documents_root());
            query.start_at =
                Some(rpc::cursor(vec![rpc::integer(*price), rpc::reference(name)], false));
        }
        query.limit = Some(i32::try_from(listing.limit.clamp(1, MAX_PAGE)).unwrap_or(1));
        let docs = rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?;
        let mut page = Vec::with_capacity(docs.len());
        for doc in docs {
            let id = rpc::doc_id(&doc).to_owned();
            let product = decode::<Product>(&paths::product(&id)?, &doc)?;
            page.push((id, product));
        }
        Ok(page)
    }
}

/// A write of `product`'s own fields (field mask: the timestamps `created_at` stays, and
/// `updated_at` becomes `now`), conditioned on the product existing.
fn product_update(
    db: &Db,
    path: &DocPath,
    product: &Product,
    now: DateTime<Utc>,
) -> Result<Write, Error> {
    let mut doc = encode(path, db.documents_root(), product)?;
    stamp(&mut doc, "updated_at", now);
    let field_paths = doc.fields.keys().cloned().collect();
    Ok(Write {
        operation: Some(write::Operation::Update(doc)),
        update_mask: Some(DocumentMask { field_paths }),
        current_document: exists(true),
        ..Default::default()
    })
}
