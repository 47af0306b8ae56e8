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

/// Longest product title, characters.
pub const MAX_TITLE: usize = 140;
/// Longest description, characters.
pub const MAX_DESCRIPTION: usize = 5_000;
/// Most tags, and the longest tag.
pub const MAX_TAGS: usize = 20;
/// Longest tag, category, variant id or handle piece, characters.
pub const MAX_TOKEN: usize = 40;
/// Most images, and the longest image URL.
pub const MAX_IMAGES: usize = 10;
/// Longest image or avatar URL, bytes.
pub const MAX_URL: usize = 2_048;
/// Most variants of one product.
pub const MAX_VARIANTS: usize = 50;
/// Highest price, minor units (10 million in major units of a two-decimal currency): keeps
/// every order total far below 2^53, the largest integer a JSON client reads exactly.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;
/// Longest vendor display name, characters.
pub const MAX_VENDOR_NAME: usize = 80;
/// Most units one stock call may set or add.
pub const MAX_STOCK_UNITS: i64 = 1_000_000;
/// The currencies the payment providers take here (ISO 4217, lower case).
pub const CURRENCIES: [&str; 5] = ["usd", "eur", "gbp", "kes", "ugx"];

/// Why a catalogue write is refused; each names the field (camelCase, as callers send it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// A required text is empty or too long.
    #[error("{field} must be 1 to {max} characters")]
    Length {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// A list is too long.
    #[error("{field} may hold at most {max} items")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// An identifier-like token has characters other than `a-z 0-9 -`.
    #[error("{field} may only use lower-case letters, digits and '-' (1 to {MAX_TOKEN})")]
    Token {
        /// The field.
        field: &'static str,
    },
    /// A price is zero, negative or too high.
    #[error("{field} must be between 1 and {MAX_PRICE_MINOR} minor units")]
    Price {
        /// The field.
        field: &'static str,
    },
    /// Not one of [`CURRENCIES`].
    #[error("currency must be one of {}", CURRENCIES.join(", "))]
    Currency,
    /// Not an `https://` URL of a sane length.
    #[error("{field} must be https:// URLs of at most {MAX_URL} bytes")]
    Url {
        /// The field.
        field: &'static str,
    },
    /// Two variants share an id.
    #[error("variant ids must be unique")]
    DuplicateVariant,
    /// A stock amount out of range.
    #[error("units must be between {min} and {MAX_STOCK_UNITS}")]
    Units {
        /// The least allowed.
        min: i64,
    },
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), CatalogueError> {
    let n = value.trim().chars().count();
    if n == 0 || value.chars().count() > max {
        return Err(CatalogueError::Length { field, max });
    }
    Ok(())
}

/// A token: `a-z`, `0-9`, `-`, 1 to [`MAX_TOKEN`] characters (categories, tags, variant ids,
/// handles: they appear in ids, filters and URLs).
pub fn token(field: &'static str, value: &str) -> Result<(), CatalogueError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_TOKEN
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(CatalogueError::Token { field }) }
}

fn url(field: &'static str, value: &str) -> Result<(), CatalogueError> {
    let ok = value.len() <= MAX_URL
        && value.strip_prefix("https://").is_some_and(|rest| {
            !rest.is_empty() && !rest.starts_with('/') && !rest.chars().any(char::is_whitespace)
        });
    if ok { Ok(()) } else { Err(CatalogueError::Url { field }) }
}

fn price(field: &'static str, value: i64) -> Result<(), CatalogueError> {
    if (1..=MAX_PRICE_MINOR).contains(&value) {
        Ok(())
    } else {
        Err(CatalogueError::Price { field })
    }
}

/// Checks a currency code (lower case, one of [`CURRENCIES`]).
pub fn currency(value: &str) -> Result<(), CatalogueError> {
    if CURRENCIES.contains(&value) { Ok(()) } else { Err(CatalogueError::Currency) }
}

/// What a vendor writes about a product (everything but the vendor fields, the status and
/// the availability summary, which the server sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    pub title: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub images: Vec<String>,
    pub price_minor: i64,
    pub currency: String,
    pub variants: Vec<Variant>,
}

/// Checks a product draft; the first problem found is returned.
pub fn validate_product(draft: &ProductDraft) -> Result<(), CatalogueError> {
    text("title", &draft.title, MAX_TITLE)?;
    if draft.description.chars().count() > MAX_DESCRIPTION {
        return Err(CatalogueError::Length { field: "description", max: MAX_DESCRIPTION });
    }
    token("category", &draft.category)?;
    if draft.tags.len() > MAX_TAGS {
        return Err(CatalogueError::TooMany { field: "tags", max: MAX_TAGS });
    }
    for tag in &draft.tags {
        token("tags", tag)?;
    }
    if draft.images.len() > MAX_IMAGES {
        return Err(CatalogueError::TooMany { field: "images", max: MAX_IMAGES });
    }
    for image in &draft.images {
        url("images", image)?;
    }
    price("priceMinor", draft.price_minor)?;
    currency(&draft.currency)?;
    if draft.variants.len() > MAX_VARIANTS {
        return Err(CatalogueError::TooMany { field: "variants", max: MAX_VARIANTS });
    }
    let mut ids = std::collections::BTreeSet::new();
    for v in &draft.variants {
        token("variants.id", &v.id)?;
        text("variants.name", &v.name, MAX_TITLE)?;
        if let Some(p) = v.price_minor {
            price("variants.priceMinor", p)?;
        }
        if !ids.insert(v.id.as_str()) {
            return Err(CatalogueError::DuplicateVariant);
        }
    }
    Ok(())
}

/// Checks a vendor profile (name, handle, avatar).
pub fn validate_vendor(
    name: &str,
    handle: &str,
    avatar_url: Option<&str>,
) -> Result<(), CatalogueError> {
    text("name", name, MAX_VENDOR_NAME)?;
    token("handle", handle)?;
    if let Some(a) = avatar_url {
        url("avatarUrl", a)?;
    }
    Ok(())
}

/// Checks a stock amount: `set` takes `0..=MAX`, `add` takes `1..=MAX`.
pub fn validate_units(units: i64, adding: bool) -> Result<(), CatalogueError> {
    let min = i64::from(adding);
    if (min..=MAX_STOCK_UNITS).contains(&units) {
        Ok(())
    } else {
        Err(CatalogueError::Units { min })
    }
}

/// The price of one unit of `variant` (its own, or the product's).
pub fn unit_price(product: &Product, variant_id: Option<&str>) -> Option<i64> {
    match variant_id {
        None if product.variants.is_empty() => Some(product.price_minor),
        None => None,
        Some(id) => product
            .variants
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.price_minor.unwrap_or(product.price_minor)),
    }
}

/// A listing cursor: the price and id of the last product of a page, as one opaque string
/// (`{price}:{id}`), so the next page starts strictly after it whatever was inserted since.
pub fn encode_cursor(price_minor: i64, product_id: &str) -> String {
    format!("{price_minor}:{product_id}")
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let (price, id) = cursor.split_once(':')?;
    let price: i64 = price.parse().ok()?;
    (!id.is_empty() && id.len() <= 128).then(|| (price, id.to_owned()))
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

    fn draft() -> ProductDraft {
        ProductDraft {
            title: "Shoes".into(),
            description: String::new(),
            category: "footwear".into(),
            tags: vec!["red".into()],
            images: vec!["https://example.com/a.png".into()],
            price_minor: 4_999,
            currency: "usd".into(),
            variants: vec![Variant { id: "l".into(), name: "Large".into(), price_minor: None }],
        }
    }

    #[test]
    fn product_validation_names_the_field() {
        assert_eq!(validate_product(&draft()), Ok(()));
        type Change = Box<dyn Fn(&mut ProductDraft)>;
        let cases: Vec<(Change, CatalogueError)> = vec![
            (
                Box::new(|d| d.title = " ".into()),
                CatalogueError::Length { field: "title", max: MAX_TITLE },
            ),
            (Box::new(|d| d.price_minor = -1), CatalogueError::Price { field: "priceMinor" }),
            (Box::new(|d| d.price_minor = 0), CatalogueError::Price { field: "priceMinor" }),
            (
                Box::new(|d| d.price_minor = MAX_PRICE_MINOR + 1),
                CatalogueError::Price { field: "priceMinor" },
            ),
            (Box::new(|d| d.currency = "USD".into()), CatalogueError::Currency),
            (Box::new(|d| d.currency = "xxx".into()), CatalogueError::Currency),
            (
                Box::new(|d| d.category = "Foot wear".into()),
                CatalogueError::Token { field: "category" },
            ),
            (
                Box::new(|d| d.images = vec!["http://example.com/a.png".into()]),
                CatalogueError::Url { field: "images" },
            ),
            (
                Box::new(|d| d.images = vec!["javascript:alert(1)".into()]),
                CatalogueError::Url { field: "images" },
            ),
            (
                Box::new(|d| d.tags = vec!["a".into(); MAX_TAGS + 1]),
                CatalogueError::TooMany { field: "tags", max: MAX_TAGS },
            ),
            (
                Box::new(|d| d.variants.push(d.variants[0].clone())),
                CatalogueError::DuplicateVariant,
            ),
            (
                Box::new(|d| d.variants[0].price_minor = Some(-5)),
                CatalogueError::Price { field: "variants.priceMinor" },
            ),
            (
                Box::new(|d| d.description = "x".repeat(MAX_DESCRIPTION + 1)),
                CatalogueError::Length { field: "description", max: MAX_DESCRIPTION },
            ),
        ];
        for (change, want) in cases {
            let mut d = draft();
            change(&mut d);
            assert_eq!(validate_product(&d), Err(want));
        }
    }

    #[test]
    fn vendors_units_prices_and_cursors() {
        assert_eq!(validate_vendor("Vera", "vera-shoes", Some("https://x.example/a.png")), Ok(()));
        assert_eq!(
            validate_vendor("Vera", "Vera!", None),
            Err(CatalogueError::Token { field: "handle" })
        );
        assert_eq!(
            validate_vendor("", "vera", None),
            Err(CatalogueError::Length { field: "name", max: MAX_VENDOR_NAME })
        );
        assert_eq!(validate_units(0, false), Ok(()));
        assert_eq!(validate_units(0, true), Err(CatalogueError::Units { min: 1 }));
        assert_eq!(
            validate_units(MAX_STOCK_UNITS + 1, false),
            Err(CatalogueError::Units { min: 0 })
        );
        let mut p = Product {
            vendor_id: "v".into(),
            vendor_name: "V".into(),
            vendor_avatar_url: None,
            title: "t".into(),
            description: String::new(),
            category: "c".into(),
            tags: vec![],
            images: vec![],
            price_minor: 100,
            currency: "usd".into(),
            variants: vec![],
            status: ProductStatus::Active,
            in_stock: true,
        };
        assert_eq!(unit_price(&p, None), Some(100));
        assert_eq!(unit_price(&p, Some("l")), None);
        p.variants = vec![
            Variant { id: "l".into(), name: "L".into(), price_minor: Some(150) },
            Variant { id: "s".into(), name: "S".into(), price_minor: None },
        ];
        assert_eq!(unit_price(&p, None), None);
        assert_eq!(unit_price(&p, Some("l")), Some(150));
        assert_eq!(unit_price(&p, Some("s")), Some(100));
        assert_eq!(decode_cursor(&encode_cursor(4_999, "p-1:x")), Some((4_999, "p-1:x".into())));
        assert_eq!(decode_cursor("abc:p"), None);
        assert_eq!(decode_cursor("10:"), None);
    }
}
