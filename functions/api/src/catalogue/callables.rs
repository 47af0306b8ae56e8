//! The catalogue callables (see the module docs).

use axum::extract::State;
use chrono::Utc;
use domain::catalogue::{
    CatalogueError, Product, ProductDraft, ProductStatus, Variant, Vendor, decode_cursor,
    encode_cursor,
};
use gcp::callable::Code;
use runtime::Error;
use runtime::trigger::{Callable, CallableResult};
use serde::{Deserialize, Serialize};
use store::catalogue::{BecomeVendor, Listing, MAX_PAGE, ProductRefused};
use ts_rs::TS;

use crate::payments::{errors::store_error, limits};
use crate::{AppState, SignedIn};

fn invalid(error: CatalogueError) -> Error {
    Error::reject(Code::InvalidArgument, format!("Invalid product or vendor: {error}."))
}

fn refused(refusal: ProductRefused) -> Error {
    match refusal {
        ProductRefused::NotFound => Error::reject(Code::NotFound, "No such product."),
        ProductRefused::NotOwner => {
            Error::reject(Code::PermissionDenied, "This product belongs to another vendor.")
        }
        ProductRefused::NotVendor => Error::reject(
            Code::FailedPrecondition,
            "You are not a vendor yet: call becomeVendor first.",
        ),
        ProductRefused::Archived => {
            Error::reject(Code::FailedPrecondition, "Archived products cannot change.")
        }
        ProductRefused::Exists => Error::reject(Code::AlreadyExists, "The product exists."),
        ProductRefused::UnknownVariant => Error::reject(
            Code::InvalidArgument,
            "Name one of the product's variants (and none for a product without variants).",
        ),
    }
}

/// `becomeVendor` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "BecomeVendorRequest")]
pub(crate) struct BecomeVendorRequest {
    /// Display name, 1 to 80 characters.
    name: String,
    /// Unique handle: `a-z`, `0-9`, `-`, 1 to 40.
    handle: String,
    /// `https://` URL.
    #[serde(default)]
    #[ts(optional)]
    avatar_url: Option<String>,
}

/// `becomeVendor` and `updateVendor`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "VendorResult")]
pub(crate) struct VendorView {
    pub(crate) vendor_id: String,
    pub(crate) name: String,
    pub(crate) handle: String,
    pub(crate) avatar_url: Option<String>,
    /// `becomeVendor`: false when the caller was a vendor already (nothing changed).
    /// `updateVendor`: always true.
    pub(crate) created: bool,
    /// `updateVendor`: products whose vendor name and avatar were rewritten.
    pub(crate) products_updated: u32,
}

pub(crate) async fn become_vendor(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<BecomeVendorRequest>,
) -> Result<CallableResult<VendorView>, Error> {
    domain::catalogue::validate_vendor(
        &request.name,
        &request.handle,
        request.avatar_url.as_deref(),
    )
    .map_err(invalid)?;
    limits::check(&state, &who.uid, "becomeVendor").await?;
    let profile = Vendor {
        name: request.name.trim().to_owned(),
        handle: request.handle,
        avatar_url: request.avatar_url,
    };
    let outcome = state
        .catalogue
        .catalogue
        .become_vendor(&who.uid, &profile, Utc::now())
        .await
        .map_err(store_error)?;
    let (vendor, created) = match outcome {
        BecomeVendor::Created(v) => (v, true),
        BecomeVendor::Already(v) => (v, false),
        BecomeVendor::HandleTaken => {
            return Err(Error::reject(Code::AlreadyExists, "That handle is taken."));
        }
    };
    Ok(CallableResult(VendorView {
        vendor_id: who.uid,
        name: vendor.name,
        handle: vendor.handle,
        avatar_url: vendor.avatar_url,
        created,
        products_updated: 0,
    }))
}

/// `updateVendor` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "UpdateVendorRequest")]
pub(crate) struct UpdateVendorRequest {
    name: String,
    #[serde(default)]
    #[ts(optional)]
    avatar_url: Option<String>,
}

pub(crate) async fn update_vendor(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<UpdateVendorRequest>,
) -> Result<CallableResult<VendorView>, Error> {
    // The handle is not changed here; a placeholder that passes validates the rest.
    domain::catalogue::validate_vendor(&request.name, "x", request.avatar_url.as_deref())
        .map_err(invalid)?;
    limits::check(&state, &who.uid, "updateVendor").await?;
    let catalogue = &state.catalogue.catalogue;
    let name = request.name.trim();
    let Some(updated) = catalogue
        .update_vendor(&who.uid, name, request.avatar_url.as_deref(), Utc::now())
        .await
        .map_err(store_error)?
    else {
        return Err(refused(ProductRefused::NotVendor));
    };
    let vendor = catalogue.vendor(&who.uid).await.map_err(store_error)?;
    Ok(CallableResult(VendorView {
        vendor_id: who.uid,
        name: name.to_owned(),
        handle: vendor.map(|v| v.handle).unwrap_or_default(),
        avatar_url: request.avatar_url,
        created: true,
        products_updated: u32::try_from(updated).unwrap_or(u32::MAX),
    }))
}

/// A variant as callers send and read it.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ProductVariant")]
pub(crate) struct VariantView {
    id: String,
    name: String,
    /// Overrides the product's price.
    #[serde(default)]
    #[ts(optional)]
    price_minor: Option<i64>,
}

/// `createProduct` data (and the fields of `updateProduct`).
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ProductFields")]
pub(crate) struct ProductFields {
    /// 1 to 140 characters.
    title: String,
    /// Up to 5,000 characters.
    #[serde(default)]
    #[ts(optional)]
    description: Option<String>,
    /// `a-z`, `0-9`, `-`.
    category: String,
    #[serde(default)]
    #[ts(optional)]
    tags: Option<Vec<String>>,
    /// `https://` URLs, at most 10; the first is the cover.
    #[serde(default)]
    #[ts(optional)]
    images: Option<Vec<String>>,
    /// 1 to 1,000,000,000 minor units.
    price_minor: i64,
    /// `usd`, `eur`, `gbp`, `kes`, `ugx`.
    currency: String,
    #[serde(default)]
    #[ts(optional)]
    variants: Option<Vec<VariantView>>,
}

impl ProductFields {
    fn into_draft(self) -> Result<ProductDraft, Error> {
        let draft = ProductDraft {
            title: self.title.trim().to_owned(),
            description: self.description.unwrap_or_default(),
            category: self.category,
            tags: self.tags.unwrap_or_default(),
            images: self.images.unwrap_or_default(),
            price_minor: self.price_minor,
            currency: self.currency,
            variants: self
                .variants
                .unwrap_or_default()
                .into_iter()
                .map(|v| Variant { id: v.id, name: v.name, price_minor: v.price_minor })
                .collect(),
        };
        domain::catalogue::validate_product(&draft).map_err(invalid)?;
        Ok(draft)
    }
}

/// A product as callers read it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ProductView")]
pub(crate) struct ProductView {
    pub(crate) product_id: String,
    pub(crate) vendor_id: String,
    pub(crate) vendor_name: String,
    pub(crate) vendor_avatar_url: Option<String>,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) category: String,
    pub(crate) tags: Vec<String>,
    pub(crate) images: Vec<String>,
    pub(crate) price_minor: i64,
    pub(crate) currency: String,
    pub(crate) variants: Vec<VariantView>,
    pub(crate) status: ProductStatus,
    /// Some SKU had units when its stock last changed or sold out (a reservation is the only
    /// authority on a unit).
    pub(crate) in_stock: bool,
}

impl ProductView {
    fn of(product_id: String, p: Product) -> Self {
        Self {
            product_id,
            vendor_id: p.vendor_id,
            vendor_name: p.vendor_name,
            vendor_avatar_url: p.vendor_avatar_url,
            title: p.title,
            description: p.description,
            category: p.category,
            tags: p.tags,
            images: p.images,
            price_minor: p.price_minor,
            currency: p.currency,
            variants: p
                .variants
                .into_iter()
                .map(|v| VariantView { id: v.id, name: v.name, price_minor: v.price_minor })
                .collect(),
            status: p.status,
            in_stock: p.in_stock,
        }
    }
}

pub(crate) async fn create_product(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<ProductFields>,
) -> Result<CallableResult<ProductView>, Error> {
    let draft = request.into_draft()?;
    limits::check(&state, &who.uid, "createProduct").await?;
    let id = format!("prod_{}", hex::encode(rand::random::<[u8; 12]>()));
    let product = state
        .catalogue
        .catalogue
        .create_product(&who.uid, &id, &draft, Utc::now())
        .await
        .map_err(store_error)?
        .map_err(refused)?;
    Ok(CallableResult(ProductView::of(id, product)))
}

/// `updateProduct` data: the product and all its vendor-written fields.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "UpdateProductRequest")]
pub(crate) struct UpdateProductRequest {
    product_id: String,
    fields: ProductFields,
}

pub(crate) async fn update_product(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<UpdateProductRequest>,
) -> Result<CallableResult<ProductView>, Error> {
    let draft = request.fields.into_draft()?;
    limits::check(&state, &who.uid, "updateProduct").await?;
    let product = state
        .catalogue
        .catalogue
        .update_product(&who.uid, &request.product_id, &draft, Utc::now())
        .await
        .map_err(store_error)?
        .map_err(refused)?;
    Ok(CallableResult(ProductView::of(request.product_id, product)))
}

/// `publishProduct` / `archiveProduct` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ProductIdRequest")]
pub(crate) struct ProductIdRequest {
    product_id: String,
}

async fn move_product(
    state: &AppState,
    who: SignedIn,
    request: ProductIdRequest,
    callable: &'static str,
    status: ProductStatus,
) -> Result<CallableResult<ProductView>, Error> {
    limits::check(state, &who.uid, callable).await?;
    let product = state
        .catalogue
        .catalogue
        .set_status(&who.uid, &request.product_id, status, Utc::now())
        .await
        .map_err(store_error)?
        .map_err(refused)?;
    Ok(CallableResult(ProductView::of(request.product_id, product)))
}

pub(crate) async fn publish_product(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<ProductIdRequest>,
) -> Result<CallableResult<ProductView>, Error> {
    move_product(&state, who, request, "publishProduct", ProductStatus::Active).await
}

pub(crate) async fn archive_product(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<ProductIdRequest>,
) -> Result<CallableResult<ProductView>, Error> {
    move_product(&state, who, request, "archiveProduct", ProductStatus::Archived).await
}

/// `setStock` / `addStock` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "StockRequest")]
pub(crate) struct StockRequest {
    product_id: String,
    /// Required when the product has variants; absent otherwise.
    #[serde(default)]
    #[ts(optional)]
    variant_id: Option<String>,
    /// `setStock`: 0 to 1,000,000; `addStock`: 1 to 1,000,000.
    units: i64,
    /// Shards to spread the units over (1 to 200, default 1 for a new SKU): more for a hot
    /// product. `addStock` only ever grows the count.
    #[serde(default)]
    #[ts(optional)]
    shards: Option<u32>,
}

/// `setStock` / `addStock`.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "StockResult")]
pub(crate) struct StockView {
    pub(crate) product_id: String,
    pub(crate) variant_id: Option<String>,
    /// Shards the SKU has now.
    pub(crate) shards: u32,
}

async fn stock(
    state: &AppState,
    who: SignedIn,
    request: StockRequest,
    adding: bool,
) -> Result<CallableResult<StockView>, Error> {
    domain::catalogue::validate_units(request.units, adding).map_err(invalid)?;
    let shards = request.shards.unwrap_or(1);
    if !(1..=domain::inventory::MAX_SHARDS).contains(&shards) {
        return Err(Error::reject(
            Code::InvalidArgument,
            format!("shards must be between 1 and {}.", domain::inventory::MAX_SHARDS),
        ));
    }
    let callable = if adding { "addStock" } else { "setStock" };
    limits::check(state, &who.uid, callable).await?;
    let catalogue = &state.catalogue.catalogue;
    let (product, variant) = (&request.product_id, request.variant_id.as_deref());
    let done = if adding {
        catalogue.add_stock(&who.uid, product, variant, request.units, shards).await
    } else {
        catalogue.set_stock(&who.uid, product, variant, request.units, shards).await
    };
    let shards = done.map_err(store_error)?.map_err(refused)?;
    Ok(CallableResult(StockView {
        product_id: request.product_id,
        variant_id: request.variant_id,
        shards,
    }))
}

pub(crate) async fn set_stock(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<StockRequest>,
) -> Result<CallableResult<StockView>, Error> {
    stock(&state, who, request, false).await
}

pub(crate) async fn add_stock(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<StockRequest>,
) -> Result<CallableResult<StockView>, Error> {
    stock(&state, who, request, true).await
}

/// `listProducts` data (every field optional).
#[derive(Debug, Default, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[ts(rename = "ListProductsRequest")]
pub(crate) struct ListProductsRequest {
    #[serde(default)]
    #[ts(optional)]
    category: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    vendor_id: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    min_price_minor: Option<i64>,
    #[serde(default)]
    #[ts(optional)]
    max_price_minor: Option<i64>,
    /// `nextCursor` of the previous page.
    #[serde(default)]
    #[ts(optional)]
    cursor: Option<String>,
    /// 1 to 50, default 20.
    #[serde(default)]
    #[ts(optional)]
    limit: Option<u32>,
}

/// `listProducts`: active products by price, then id.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "ListProductsResult")]
pub(crate) struct ProductPage {
    pub(crate) products: Vec<ProductView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

pub(crate) async fn list_products(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<Option<ListProductsRequest>>,
) -> Result<CallableResult<ProductPage>, Error> {
    let request = request.unwrap_or_default();
    let bad = |what: &str| Error::reject(Code::InvalidArgument, format!("Invalid {what}."));
    if let Some(c) = &request.category {
        domain::catalogue::token("category", c).map_err(invalid)?;
    }
    if let Some(v) = &request.vendor_id {
        store::paths::validate_id("vendor", v).map_err(|_| bad("vendorId"))?;
    }
    for price in [request.min_price_minor, request.max_price_minor].into_iter().flatten() {
        if !(0..=domain::catalogue::MAX_PRICE_MINOR).contains(&price) {
            return Err(bad("price range"));
        }
    }
    let limit = request.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad("limit (1 to 50)"));
    }
    let after = match &request.cursor {
        Some(c) => Some(decode_cursor(c).ok_or_else(|| bad("cursor"))?),
        None => None,
    };
    limits::check(&state, &who.uid, "listProducts").await?;
    let listing = Listing {
        category: request.category,
        vendor_id: request.vendor_id,
        min_price: request.min_price_minor,
        max_price: request.max_price_minor,
        after,
        limit,
    };
    if let Some(page) = state.catalogue.pages.get(&listing) {
        return Ok(CallableResult(page));
    }
    let found = state.catalogue.catalogue.list_active(&listing).await.map_err(store_error)?;
    let full = found.len() == limit as usize;
    let next_cursor = found.last().filter(|_| full).map(|(id, p)| encode_cursor(p.price_minor, id));
    let page = ProductPage {
        products: found.into_iter().map(|(id, p)| ProductView::of(id, p)).collect(),
        next_cursor,
    };
    state.catalogue.pages.insert(listing, page.clone());
    Ok(CallableResult(page))
}
