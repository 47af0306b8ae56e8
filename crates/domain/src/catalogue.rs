//! The marketplace catalogue: the stored shape of vendors and products.
//!
//! These are the fields of `vendors/{vendorId}` and `products/{productId}` as `store` writes
//! them (field names in snake_case, like every other stored document); `store` adds the
//! Firestore timestamps `created_at` and `updated_at` beside them. Everything that reads the
//! catalogue (the client API, the search replica, the rules) reads these fields, so they are
//! defined once, here.
//!
//! Money is in minor units of an ISO 4217 currency written in lower case (`"usd"`), as in
//! orders. A product's `price_minor` is its base price; a variant may override it.

use serde::{Deserialize, Serialize};

/// Where a product is in its life. Only `active` products are visible to buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ProductStatus {
    /// Being prepared by its vendor; not listed.
    Draft,
    /// Listed: buyers may read, browse, search and buy it.
    Active,
    /// Withdrawn by its vendor; kept for the orders that name it, never listed again.
    Archived,
}

/// One variant of a product (a size, a colour). Its stock is the SKU
/// `domain::inventory::Sku::variant(product_id, id)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Variant {
    /// Stable id within the product.
    pub id: String,
    /// What buyers see ("Large", "Red").
    pub name: String,
    /// Overrides the product's `price_minor` when set.
    pub price_minor: Option<i64>,
}

/// The fields of `products/{productId}` (besides the timestamps `store` adds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Product {
    /// The vendor's id (`vendors/{vendorId}`; the vendor's uid).
    pub vendor_id: String,
    /// Denormalised from the vendor profile, kept current when it changes.
    pub vendor_name: String,
    /// Denormalised from the vendor profile, kept current when it changes.
    pub vendor_avatar_url: Option<String>,
    pub title: String,
    pub description: String,
    /// One category id (browsing and search filter on it).
    pub category: String,
    pub tags: Vec<String>,
    /// Image URLs, first one is the cover.
    pub images: Vec<String>,
    /// Base price, minor units of `currency`.
    pub price_minor: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// Empty for a product sold without variants (its SKU is the product itself).
    pub variants: Vec<Variant>,
    pub status: ProductStatus,
    /// Availability summary for listing and search: some SKU of the product had units when the
    /// catalogue last summarised its stock (the stock itself lives in the sharded
    /// `products/{p}/stock/{sku}` documents; a reservation is the only authority on a unit).
    pub in_stock: bool,
}

/// The fields of `vendors/{vendorId}` (the vendor's uid; besides the timestamps `store` adds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Vendor {
    /// Display name.
    pub name: String,
    /// Unique, URL-safe handle.
    pub handle: String,
    pub avatar_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_round_trips_with_snake_case_fields_and_status() {
        let p = Product {
            vendor_id: "v1".into(),
            vendor_name: "Vera".into(),
            vendor_avatar_url: None,
            title: "Shoes".into(),
            description: "Red shoes".into(),
            category: "footwear".into(),
            tags: vec!["red".into()],
            images: vec!["https://example.com/a.png".into()],
            price_minor: 4_999,
            currency: "usd".into(),
            variants: vec![Variant {
                id: "l".into(),
                name: "Large".into(),
                price_minor: Some(5_499),
            }],
            status: ProductStatus::Active,
            in_stock: true,
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], "active");
        assert_eq!(json["price_minor"], 4_999);
        assert_eq!(json["variants"][0]["price_minor"], 5_499);
        assert_eq!(serde_json::from_value::<Product>(json).unwrap(), p);
    }
}
