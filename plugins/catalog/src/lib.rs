//! `catalog`: the seed application's catalog caches, read from its database.
//!
//! Reads the `categories` and `products` tables (see `config/demo/schema.sql`)
//! through the host's SQL capability, and warms the keys the seed Rails
//! application caches (`Rails.cache.fetch` in its `Product` and `Category`
//! models), each with the value that application computes:
//!
//! | key                             | priority | ttl   | tags                                  | value |
//! |---------------------------------|----------|-------|---------------------------------------|-------|
//! | `categories/navigation`         | critical | 2 h   | `catalog`, `categories`, `navigation` | Array of root `category`, each with `subcategories: [category]` |
//! | `products/homepage_featured`    | high     | 1 h   | `catalog`, `products`, `featured`     | Array of `product` |
//! | `products/category/{slug}`      | normal   | 30 min| `catalog`, `products` (arg = slug)    | Array of `product` |
//! | `categories/{id}/product_count` | low      | 1 h   | `catalog`, `categories`, `counts` (arg = id) | Integer |
//!
//! The application caches Arrays of its records (`.to_a`) and an Integer
//! (`.count`); a record is cached here as the Hash of its columns, in
//! column order (what `as_json` gives, without the timestamps):
//!
//! * `category`: `{id, name, slug, parent_id, position, active}`
//! * `product`: `{id, name, slug, price_cents, category_id, featured, active,
//!   category}`, with its `category` (the application loads it with
//!   `includes(:category)`).
//!
//! Prices are integer cents (`price_cents`), exactly as stored: no floating
//! point, the application formats them. With a `[backend] format` the host
//! converts each document to the framework's own types (Hashes with String
//! keys, Arrays and Integers for Rails).
//!
//! What each value holds, query by query as the application writes it:
//!
//! * `categories/navigation`: `root_categories.active.ordered.includes(:subcategories)`:
//!   the active root categories (`parent_id IS NULL`) by `position`, then
//!   `name` (then `id`), each with all its subcategories (the association
//!   has no scope: inactive ones too, with their `active` flag), by `id`.
//! * `products/homepage_featured`: `featured.active.includes(:category).limit(8)`:
//!   up to 8 featured, active products, by `id`.
//! * `products/category/{slug}`: the active products whose category has
//!   that slug and is active (not its subcategories), by `name`, then `id`.
//!   One key per active category.
//! * `categories/{id}/product_count`: `products.active.count`: how many
//!   active products have that `category_id`. One key per active category.
//!
//! A key whose category no longer exists or is no longer active is skipped
//! (not failed), so a category deactivated between `enumerate` and `produce`
//! does not show up as an error.
//!
//! Settings (all optional):
//!
//! * `source`: the SQL source to read (default `app`); the plugin must be
//!   granted it in the host config.
//! * `page_size`: categories per `enumerate` page (default 200, at least 1).
//!   Each category gives two keys; the first page also holds the two fixed
//!   keys.
//!
//! Enumeration pages through the active categories by id (keyset
//! pagination): the cursor is the id of the last category listed. `produce`
//! reads everything from the key itself, so keys warmed on demand (without
//! an arg) work too. Every statement is portable: `$N` parameters, booleans
//! compared with `= TRUE`, no casts, no `IN` lists.

use preheat_guest::{
    export_plugin, log, params, query, Context, Entry, Error, KeySpec, Page, Plugin, Priority, Rows, WarmError,
};
use serde::{Deserialize, Serialize};

/// The key of the navigation menu.
pub const NAVIGATION_KEY: &str = "categories/navigation";
/// The key of the homepage's featured products.
pub const FEATURED_KEY: &str = "products/homepage_featured";

/// How many featured products the homepage shows.
pub const FEATURED_LIMIT: i64 = 8;

const CATEGORY_PRODUCTS_PREFIX: &str = "products/category/";
const CATEGORIES_PREFIX: &str = "categories/";
const PRODUCT_COUNT_SUFFIX: &str = "/product_count";

const DEFAULT_SOURCE: &str = "app";
const DEFAULT_PAGE_SIZE: u32 = 200;

/// One page of active categories, after the id `$1`, at most `$2` rows.
pub const SQL_CATEGORY_PAGE: &str = "\
SELECT id, slug FROM categories \
WHERE active = TRUE AND id > $1 \
ORDER BY id \
LIMIT $2";

/// The columns of a category, as `cat_*` (a product's category) or
/// `sub_*` (a subcategory).
macro_rules! category_columns {
    ($t:literal, $as:literal) => {
        concat!(
            $t,
            ".id AS ",
            $as,
            "id, ",
            $t,
            ".name AS ",
            $as,
            "name, ",
            $t,
            ".slug AS ",
            $as,
            "slug, ",
            $t,
            ".parent_id AS ",
            $as,
            "parent_id, ",
            $t,
            ".position AS ",
            $as,
            "position, ",
            $t,
            ".active AS ",
            $as,
            "active"
        )
    };
}

/// Active roots with all their subcategories, one row per (root,
/// subcategory) and one row with null `sub_*` columns for a root without any.
pub const SQL_NAVIGATION: &str = concat!(
    "SELECT r.id, r.name, r.slug, r.parent_id, r.position, r.active, ",
    category_columns!("s", "sub_"),
    " FROM categories r \
LEFT JOIN categories s ON s.parent_id = r.id \
WHERE r.parent_id IS NULL AND r.active = TRUE \
ORDER BY r.position, r.name, r.id, s.id"
);

/// Featured active products with their categories; `$1` is the limit.
pub const SQL_FEATURED: &str = concat!(
    "SELECT p.id, p.name, p.slug, p.price_cents, p.category_id, p.featured, p.active, ",
    category_columns!("c", "cat_"),
    " FROM products p \
JOIN categories c ON c.id = p.category_id \
WHERE p.featured = TRUE AND p.active = TRUE \
ORDER BY p.id \
LIMIT $1"
);

/// The active category with slug `$1` and its active products: no row when
/// the category is missing or inactive, one row with null product columns
/// when it has no active product.
pub const SQL_CATEGORY_PRODUCTS: &str = concat!(
    "SELECT p.id, p.name, p.slug, p.price_cents, p.category_id, p.featured, p.active, ",
    category_columns!("c", "cat_"),
    " FROM categories c \
LEFT JOIN products p ON p.category_id = c.id AND p.active = TRUE \
WHERE c.slug = $1 AND c.active = TRUE \
ORDER BY p.name, p.id"
);

/// The number of active products of the active category `$1`: no row when
/// the category is missing or inactive.
pub const SQL_PRODUCT_COUNT: &str = "\
SELECT COUNT(p.id) AS product_count \
FROM categories c \
LEFT JOIN products p ON p.category_id = c.id AND p.active = TRUE \
WHERE c.id = $1 AND c.active = TRUE \
GROUP BY c.id";

/// The plugin.
pub struct Catalog;

impl Plugin for Catalog {
    fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String> {
        let settings = Settings::from_context(ctx)?;
        let after: Option<i64> = match cursor.as_deref() {
            None => None,
            Some(c) => Some(
                c.parse()
                    .map_err(|_| format!("invalid cursor {c:?}: expected the id of the last category listed"))?,
            ),
        };
        let limit = i64::from(settings.page_size) + 1;
        let rows = query(
            &settings.source,
            SQL_CATEGORY_PAGE,
            &params![after.unwrap_or(i64::MIN), limit],
        )
        .map_err(|e| format!("listing categories in source {:?}: {e}", settings.source))?;
        let mut categories: Vec<CategoryKeyRow> = rows.into_structs()?;
        let more = categories.len() > settings.page_size as usize;
        categories.truncate(settings.page_size as usize);
        if after.is_none() {
            log::debug!(
                "listing catalog keys from source {:?}, {} categories per page",
                settings.source,
                settings.page_size
            );
        }
        Ok(page(after.is_none(), &categories, more))
    }

    fn produce(ctx: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
        let source = match Settings::from_context(ctx) {
            Ok(s) => s.source,
            Err(e) => return keys.iter().map(|_| Err(WarmError::fail(&e))).collect(),
        };
        keys.iter().map(|spec| produce_one(&source, spec)).collect()
    }
}

export_plugin!(Catalog);

/// The parsed settings.
#[derive(Debug, PartialEq)]
struct Settings {
    source: String,
    page_size: u32,
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, String> {
        let source = ctx.setting("source").unwrap_or(DEFAULT_SOURCE).trim();
        if source.is_empty() {
            return Err("setting \"source\" is empty: name a SQL source from the host config".into());
        }
        let page_size: u32 = ctx.setting_or("page_size", DEFAULT_PAGE_SIZE)?;
        if page_size == 0 {
            return Err("setting \"page_size\" must be at least 1, got 0".into());
        }
        Ok(Settings {
            source: source.to_string(),
            page_size,
        })
    }
}

/// A row of [`SQL_CATEGORY_PAGE`].
#[derive(Debug, Deserialize, PartialEq)]
struct CategoryKeyRow {
    id: i64,
    slug: String,
}

/// The keys of one page; `first` adds the two fixed keys in front.
fn page(first: bool, categories: &[CategoryKeyRow], more: bool) -> Page {
    let mut keys = Vec::with_capacity(categories.len() * 2 + 2);
    if first {
        keys.push(
            KeySpec::new(NAVIGATION_KEY)
                .priority(Priority::Critical)
                .ttl(7200)
                .tags(["catalog", "categories", "navigation"]),
        );
        keys.push(
            KeySpec::new(FEATURED_KEY)
                .priority(Priority::High)
                .ttl(3600)
                .tags(["catalog", "products", "featured"]),
        );
    }
    for c in categories {
        keys.push(
            KeySpec::new(format!("{CATEGORY_PRODUCTS_PREFIX}{}", c.slug))
                .priority(Priority::Normal)
                .ttl(1800)
                .tags(["catalog", "products"])
                .arg(c.slug.clone()),
        );
        keys.push(
            KeySpec::new(format!("{CATEGORIES_PREFIX}{}{PRODUCT_COUNT_SUFFIX}", c.id))
                .priority(Priority::Low)
                .ttl(3600)
                .tags(["catalog", "categories", "counts"])
                .arg(c.id.to_string()),
        );
    }
    match categories.last() {
        Some(last) if more => Page::more(keys, last.id.to_string()),
        _ => Page::last(keys),
    }
}

/// What a key asks for.
#[derive(Debug, PartialEq)]
enum CatalogKey<'a> {
    Navigation,
    Featured,
    CategoryProducts(&'a str),
    ProductCount(i64),
}

impl<'a> CatalogKey<'a> {
    fn parse(key: &'a str) -> Result<Self, String> {
        if key == NAVIGATION_KEY {
            return Ok(CatalogKey::Navigation);
        }
        if key == FEATURED_KEY {
            return Ok(CatalogKey::Featured);
        }
        if let Some(slug) = key.strip_prefix(CATEGORY_PRODUCTS_PREFIX) {
            if slug.is_empty() || slug.contains('/') {
                return Err(format!("{key:?}: expected products/category/{{slug}}"));
            }
            return Ok(CatalogKey::CategoryProducts(slug));
        }
        if let Some(id) = key
            .strip_prefix(CATEGORIES_PREFIX)
            .and_then(|rest| rest.strip_suffix(PRODUCT_COUNT_SUFFIX))
        {
            return id.parse().map(CatalogKey::ProductCount).map_err(|_| {
                format!("{key:?}: {id:?} is not a category id (expected categories/{{id}}/product_count)")
            });
        }
        Err(format!("unknown key {key:?}: this plugin warms {NAVIGATION_KEY}, {FEATURED_KEY}, products/category/{{slug}} and categories/{{id}}/product_count"))
    }
}

fn produce_one(source: &str, spec: &KeySpec) -> Result<Entry, WarmError> {
    let key = CatalogKey::parse(&spec.key).map_err(WarmError::fail)?;
    let run = |sql: &str, params: &[preheat_guest::SqlValue]| {
        query(source, sql, params).map_err(|e| query_failure(&spec.key, e))
    };
    let decode = |e: String| WarmError::fail(format!("{}: {e}", spec.key));
    match key {
        CatalogKey::Navigation => Entry::json(&navigation(run(SQL_NAVIGATION, &[])?).map_err(decode)?),
        CatalogKey::Featured => {
            let rows = run(SQL_FEATURED, &params![FEATURED_LIMIT])?;
            Entry::json(&featured(rows).map_err(decode)?)
        }
        CatalogKey::CategoryProducts(slug) => {
            let rows = run(SQL_CATEGORY_PRODUCTS, &params![slug])?;
            match category_products(rows).map_err(decode)? {
                Some(doc) => Entry::json(&doc),
                None => Err(WarmError::skip(format!(
                    "{}: no active category with slug {slug:?}",
                    spec.key
                ))),
            }
        }
        CatalogKey::ProductCount(id) => {
            let rows = run(SQL_PRODUCT_COUNT, &params![id])?;
            match product_count(rows).map_err(decode)? {
                Some(doc) => Entry::json(&doc),
                None => Err(WarmError::skip(format!(
                    "{}: no active category with id {id}",
                    spec.key
                ))),
            }
        }
    }
}

/// A failed query, for the key it was for: retried when the host says it
/// is transient (a lost connection), failed otherwise (an ungranted source,
/// a missing table, a row-cap overflow will not fix themselves).
fn query_failure(key: &str, error: Error) -> WarmError {
    WarmError::from(error.context(key))
}

// ---------------------------------------------------------------------------
// JSON shapes (pure: tested natively with hand-built rows). Structs rather
// than `json!` so that fields keep the tables' column order in the cached
// documents.
// ---------------------------------------------------------------------------

/// A category record: its columns, as the application caches it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Category {
    /// The category id.
    pub id: i64,
    /// Its display name.
    pub name: String,
    /// Its URL slug.
    pub slug: String,
    /// Its parent's id; `None` for a root category.
    pub parent_id: Option<i64>,
    /// Its place among its siblings.
    pub position: i64,
    /// Whether it is shown.
    pub active: bool,
}

/// A product record with its category, as the application caches it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Product {
    /// The product id.
    pub id: i64,
    /// Its display name.
    pub name: String,
    /// Its URL slug.
    pub slug: String,
    /// Its price, in integer cents.
    pub price_cents: i64,
    /// The id of its category.
    pub category_id: i64,
    /// Whether the homepage features it.
    pub featured: bool,
    /// Whether it is on sale.
    pub active: bool,
    /// Its category (loaded with the product).
    pub category: Category,
}

/// A root category of the navigation menu with its subcategories: the
/// root's columns (its `parent_id` always `None`, `active` always `true`:
/// only active roots are listed), then `subcategories`.
#[derive(Debug, Serialize, PartialEq)]
pub struct MenuItem {
    /// The root category.
    #[serde(flatten)]
    pub root: Category,
    /// All its subcategories, by id, active or not.
    pub subcategories: Vec<Category>,
}

/// A row of [`SQL_FEATURED`] or [`SQL_CATEGORY_PRODUCTS`]: the product
/// columns, null when the category has no active product, and its
/// category's as `cat_*`.
#[derive(Deserialize)]
struct ProductRow {
    id: Option<i64>,
    name: Option<String>,
    slug: Option<String>,
    price_cents: Option<i64>,
    category_id: Option<i64>,
    featured: Option<bool>,
    active: Option<bool>,
    cat_id: i64,
    cat_name: String,
    cat_slug: String,
    cat_parent_id: Option<i64>,
    cat_position: i64,
    cat_active: bool,
}

impl ProductRow {
    /// The product of the row, `None` when its columns are null (a
    /// category without active products).
    fn into_product(self) -> Result<Option<Product>, String> {
        let Some(id) = self.id else { return Ok(None) };
        let category = Category {
            id: self.cat_id,
            name: self.cat_name,
            slug: self.cat_slug,
            parent_id: self.cat_parent_id,
            position: self.cat_position,
            active: self.cat_active,
        };
        match (
            self.name,
            self.slug,
            self.price_cents,
            self.category_id,
            self.featured,
            self.active,
        ) {
            (Some(name), Some(slug), Some(price_cents), Some(category_id), Some(featured), Some(active)) => {
                Ok(Some(Product {
                    id,
                    name,
                    slug,
                    price_cents,
                    category_id,
                    featured,
                    active,
                    category,
                }))
            }
            _ => Err(format!(
                "product {id} has a null name, slug, price_cents, category_id, featured or active"
            )),
        }
    }
}

/// The featured products from the rows of [`SQL_FEATURED`].
fn featured(rows: Rows) -> Result<Vec<Product>, String> {
    let mut products = Vec::with_capacity(rows.len());
    for row in rows.into_structs::<ProductRow>()? {
        products.push(row.into_product()?.ok_or("a featured product row has a null id")?);
    }
    Ok(products)
}

/// The products of a category from the rows of [`SQL_CATEGORY_PRODUCTS`],
/// or `None` when there is no row (no such active category).
fn category_products(rows: Rows) -> Result<Option<Vec<Product>>, String> {
    let rows: Vec<ProductRow> = rows.into_structs()?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut products = Vec::with_capacity(rows.len());
    for row in rows {
        products.extend(row.into_product()?);
    }
    Ok(Some(products))
}

/// A row of [`SQL_NAVIGATION`]: a root, and one of its subcategories as
/// `sub_*` (null when it has none).
#[derive(Deserialize)]
struct NavigationRow {
    id: i64,
    name: String,
    slug: String,
    parent_id: Option<i64>,
    position: i64,
    active: bool,
    sub_id: Option<i64>,
    sub_name: Option<String>,
    sub_slug: Option<String>,
    sub_parent_id: Option<i64>,
    sub_position: Option<i64>,
    sub_active: Option<bool>,
}

/// The menu from the rows of [`SQL_NAVIGATION`], which come grouped by
/// root, in menu order.
fn navigation(rows: Rows) -> Result<Vec<MenuItem>, String> {
    let mut menu: Vec<MenuItem> = Vec::new();
    for r in rows.into_structs::<NavigationRow>()? {
        if menu.last().is_none_or(|item| item.root.id != r.id) {
            menu.push(MenuItem {
                root: Category {
                    id: r.id,
                    name: r.name,
                    slug: r.slug,
                    parent_id: r.parent_id,
                    position: r.position,
                    active: r.active,
                },
                subcategories: Vec::new(),
            });
        }
        let Some(id) = r.sub_id else { continue };
        let (Some(name), Some(slug), Some(position), Some(active)) =
            (r.sub_name, r.sub_slug, r.sub_position, r.sub_active)
        else {
            return Err(format!("subcategory {id} has a null name, slug, position or active"));
        };
        if let Some(item) = menu.last_mut() {
            item.subcategories.push(Category {
                id,
                name,
                slug,
                parent_id: r.sub_parent_id,
                position,
                active,
            });
        }
    }
    Ok(menu)
}

/// The count from the rows of [`SQL_PRODUCT_COUNT`], or `None` when there is
/// no row (no such active category).
fn product_count(rows: Rows) -> Result<Option<i64>, String> {
    rows.first().map(|row| row.get::<i64>("product_count")).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use preheat_guest::ErrorKind;
    use preheat_guest::SqlValue;
    use serde_json::{json, Value};

    /// The document as JSON, as it would be cached.
    fn js<T: Serialize>(doc: T) -> Value {
        serde_json::to_value(doc).unwrap()
    }

    fn int(i: i64) -> SqlValue {
        SqlValue::Int(i)
    }

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.to_string())
    }

    fn category_rows(ids: &[i64]) -> Vec<CategoryKeyRow> {
        ids.iter()
            .map(|&id| CategoryKeyRow {
                id,
                slug: format!("cat-{id}"),
            })
            .collect()
    }

    #[test]
    fn first_page_holds_fixed_keys_then_two_keys_per_category() {
        let p = page(true, &category_rows(&[3, 7]), true);
        let keys: Vec<_> = p.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "categories/navigation",
                "products/homepage_featured",
                "products/category/cat-3",
                "categories/3/product_count",
                "products/category/cat-7",
                "categories/7/product_count",
            ]
        );
        assert_eq!(p.cursor.as_deref(), Some("7"));
        let by_key = |k: &str| p.keys.iter().find(|s| s.key == k).unwrap();
        let nav = by_key("categories/navigation");
        assert_eq!((nav.priority, nav.ttl_seconds), (Priority::Critical, Some(7200)));
        let featured = by_key("products/homepage_featured");
        assert_eq!((featured.priority, featured.ttl_seconds), (Priority::High, Some(3600)));
        let listing = by_key("products/category/cat-3");
        assert_eq!((listing.priority, listing.ttl_seconds), (Priority::Normal, Some(1800)));
        assert_eq!(listing.arg.as_deref(), Some("cat-3"));
        let count = by_key("categories/3/product_count");
        assert_eq!((count.priority, count.ttl_seconds), (Priority::Low, Some(3600)));
        assert_eq!(count.arg.as_deref(), Some("3"));
    }

    #[test]
    fn later_pages_have_no_fixed_keys_and_the_last_has_no_cursor() {
        let p = page(false, &category_rows(&[9]), false);
        assert_eq!(p.keys.len(), 2);
        assert!(p.is_last());
        let empty = page(true, &[], false);
        assert_eq!(empty.keys.len(), 2);
        assert!(empty.is_last());
    }

    #[test]
    fn settings_defaults_and_errors() {
        let s = Settings::from_context(&Context::new("r", "proactive", [("x", "y")])).unwrap();
        assert_eq!(
            s,
            Settings {
                source: "app".into(),
                page_size: 200
            }
        );
        let c = Context::new("r", "proactive", [("source", "shop"), ("page_size", "5")]);
        assert_eq!(Settings::from_context(&c).unwrap().source, "shop");
        for (k, v) in [("page_size", "0"), ("page_size", "x"), ("source", " ")] {
            let err = Settings::from_context(&Context::new("r", "p", [(k, v)])).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn enumerate_rejects_bad_cursor_and_needs_the_host() {
        let ctx = Context::new("r", "proactive", [("page_size", "10")]);
        let err = Catalog::enumerate(&ctx, Some("abc".into())).unwrap_err();
        assert!(err.contains("cursor"), "{err}");
        let err = Catalog::enumerate(&ctx, None).unwrap_err();
        assert!(err.contains("\"app\"") && err.contains("preheat host"), "{err}");
    }

    #[test]
    fn parses_keys() {
        assert_eq!(CatalogKey::parse(NAVIGATION_KEY), Ok(CatalogKey::Navigation));
        assert_eq!(CatalogKey::parse(FEATURED_KEY), Ok(CatalogKey::Featured));
        assert_eq!(
            CatalogKey::parse("products/category/home-kitchen"),
            Ok(CatalogKey::CategoryProducts("home-kitchen"))
        );
        assert_eq!(
            CatalogKey::parse("categories/42/product_count"),
            Ok(CatalogKey::ProductCount(42))
        );
        for bad in [
            "products/category/",
            "products/category/a/b",
            "categories/x/product_count",
            "categories/1",
            "nope",
        ] {
            assert!(CatalogKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_fail_and_queries_need_the_host() {
        let ctx = Context::new("r", "proactive", [("source", "shop")]);
        let out = Catalog::produce(&ctx, vec![KeySpec::new("nope"), KeySpec::new("categories/navigation")]);
        assert!(matches!(&out[0], Err(WarmError::Fail(m)) if m.contains("nope")));
        assert!(
            matches!(&out[1], Err(WarmError::Fail(m)) if m.contains("\"shop\"") && m.contains("categories/navigation")),
            "{:?}",
            out[1]
        );
    }

    #[test]
    fn transient_query_errors_are_retried() {
        let lost = query_failure("k", Error::transient("query on source `app`: the connection is lost"));
        assert!(
            matches!(&lost, WarmError::Retry(m) if m.starts_with("k: query on source")),
            "{lost:?}"
        );
        let denied = Error::new(ErrorKind::Denied, "source \"app\" is not granted");
        let e = query_failure("k", denied);
        assert!(matches!(&e, WarmError::Fail(m) if m.contains("not granted") && m.starts_with("k:")));
        let timeout = query_failure("k", Error::new(ErrorKind::Limit, "timed out after 5s (query_timeout)"));
        assert!(
            matches!(timeout, WarmError::Fail(_)),
            "a query over query_timeout is not retried"
        );
    }

    const PRODUCT_COLUMNS: [&str; 13] = [
        "id",
        "name",
        "slug",
        "price_cents",
        "category_id",
        "featured",
        "active",
        "cat_id",
        "cat_name",
        "cat_slug",
        "cat_parent_id",
        "cat_position",
        "cat_active",
    ];

    /// The category columns of a row: (id, name, slug), a child of root 1.
    fn cat(c: (i64, &str, &str)) -> Vec<SqlValue> {
        vec![int(c.0), text(c.1), text(c.2), int(1), int(2), SqlValue::Boolean(true)]
    }

    /// A product row; booleans as SQLite gives them (0/1).
    fn product_row(id: i64, name: &str, c: (i64, &str, &str)) -> Vec<SqlValue> {
        let mut row = vec![
            int(id),
            text(name),
            text(&name.to_lowercase()),
            int(id * 100 + 99),
            int(c.0),
            int(1),
            int(1),
        ];
        row.extend(cat(c));
        row
    }

    #[test]
    fn featured_is_an_array_of_product_records_with_their_category() {
        let rows = Rows::new(
            PRODUCT_COLUMNS,
            vec![
                product_row(97, "Lamp", (20, "Books Deals", "books-deals")),
                product_row(194, "Kettle", (3, "Books", "books")),
            ],
        );
        let doc = featured(rows).unwrap();
        let text = serde_json::to_string(&doc).unwrap();
        assert!(
            text.starts_with(
                r#"[{"id":97,"name":"Lamp","slug":"lamp","price_cents":9799,"category_id":20,"featured":true,"active":true,"category":{"id":20,"#
            ),
            "{text}"
        );
        let doc = js(doc);
        assert_eq!(
            doc[0],
            json!({
                "id": 97, "name": "Lamp", "slug": "lamp", "price_cents": 9799, "category_id": 20,
                "featured": true, "active": true,
                "category": {"id": 20, "name": "Books Deals", "slug": "books-deals",
                             "parent_id": 1, "position": 2, "active": true}
            })
        );
        assert_eq!(doc.as_array().unwrap().len(), 2);
        assert_eq!(js(featured(Rows::default()).unwrap()), json!([]));
    }

    /// A category row without an active product.
    fn empty_category_row(c: (i64, &str, &str)) -> Vec<SqlValue> {
        let mut row = vec![SqlValue::Null; 7];
        row.extend(cat(c));
        row
    }

    #[test]
    fn category_products_are_an_array_of_product_records() {
        let shoes = (5, "Shoes", "shoes");
        let rows = Rows::new(
            PRODUCT_COLUMNS,
            vec![product_row(2, "Boot", shoes), product_row(1, "Sandal", shoes)],
        );
        let doc = js(category_products(rows).unwrap().unwrap());
        let products = doc.as_array().unwrap();
        assert_eq!(products.len(), 2);
        assert_eq!(products[0]["name"], "Boot");
        assert_eq!(products[1]["category"]["slug"], "shoes");
        assert_eq!(products[1]["category_id"], 5);
        assert_eq!(products[1]["price_cents"], 199);
    }

    #[test]
    fn empty_and_missing_categories() {
        let empty = Rows::new(PRODUCT_COLUMNS, vec![empty_category_row((5, "Shoes", "shoes"))]);
        assert_eq!(js(category_products(empty).unwrap().unwrap()), json!([]));
        assert_eq!(category_products(Rows::new(PRODUCT_COLUMNS, vec![])).unwrap(), None);
    }

    #[test]
    fn a_product_with_a_null_column_is_an_error() {
        let mut row = product_row(3, "Hat", (5, "Shoes", "shoes"));
        row[3] = SqlValue::Null;
        let err = category_products(Rows::new(PRODUCT_COLUMNS, vec![row])).unwrap_err();
        assert!(err.contains("product 3") && err.contains("price_cents"), "{err}");
    }

    #[test]
    fn navigation_is_an_array_of_roots_with_all_their_subcategories() {
        let row = |id: i64, name: &str, sub: Option<(i64, &str, bool)>| {
            let mut r = vec![
                int(id),
                text(name),
                text(&name.to_lowercase()),
                SqlValue::Null,
                int(0),
                int(1),
            ];
            match sub {
                Some((sid, sname, active)) => r.extend([
                    int(sid),
                    text(sname),
                    text(&sname.to_lowercase()),
                    int(id),
                    int(3),
                    SqlValue::Boolean(active),
                ]),
                None => r.extend(vec![SqlValue::Null; 6]),
            }
            r
        };
        let rows = Rows::new(
            [
                "id",
                "name",
                "slug",
                "parent_id",
                "position",
                "active",
                "sub_id",
                "sub_name",
                "sub_slug",
                "sub_parent_id",
                "sub_position",
                "sub_active",
            ],
            vec![
                row(10, "Garden", Some((12, "Seeds", true))),
                row(10, "Garden", Some((15, "Tools", false))),
                row(1, "Books", None),
                row(4, "Toys", Some((40, "Games", true))),
            ],
        );
        let doc = js(navigation(rows).unwrap());
        let menu = doc.as_array().unwrap();
        let names: Vec<&str> = menu.iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Garden", "Books", "Toys"]);
        assert_eq!(
            menu[0],
            json!({
                "id": 10, "name": "Garden", "slug": "garden", "parent_id": null, "position": 0, "active": true,
                "subcategories": [
                    {"id": 12, "name": "Seeds", "slug": "seeds", "parent_id": 10, "position": 3, "active": true},
                    {"id": 15, "name": "Tools", "slug": "tools", "parent_id": 10, "position": 3, "active": false}
                ]
            })
        );
        assert_eq!(menu[1]["subcategories"], json!([]));
    }

    #[test]
    fn product_count_is_an_integer() {
        let rows = Rows::new(["product_count"], vec![vec![int(47)]]);
        let count = product_count(rows).unwrap();
        assert_eq!(count, Some(47));
        assert_eq!(serde_json::to_string(&count.unwrap()).unwrap(), "47");
        assert_eq!(product_count(Rows::new(["product_count"], vec![])).unwrap(), None);
    }

    #[test]
    fn decoding_errors_name_the_column() {
        let rows = Rows::new(["product_count"], vec![vec![text("x")]]);
        let err = product_count(rows).unwrap_err();
        assert!(err.contains("product_count"), "{err}");
    }

    #[test]
    fn sql_is_portable() {
        for sql in [
            SQL_CATEGORY_PAGE,
            SQL_NAVIGATION,
            SQL_FEATURED,
            SQL_CATEGORY_PRODUCTS,
            SQL_PRODUCT_COUNT,
        ] {
            let upper = sql.to_uppercase();
            for banned in ["::", "ILIKE", " IN (", "?", ";"] {
                assert!(!upper.contains(banned), "{banned} in {sql}");
            }
        }
    }
}
