//! `catalog`: the seed application's catalog caches, read from its database.
//!
//! Reads the `categories` and `products` tables (see `config/demo/schema.sql`)
//! through the host's SQL capability, and warms:
//!
//! | key                             | priority | ttl   | tags                                  | value |
//! |---------------------------------|----------|-------|---------------------------------------|-------|
//! | `categories/navigation`         | critical | 2 h   | `catalog`, `categories`, `navigation` | `{categories: [{id, name, slug, children: [{id, name, slug}]}]}` |
//! | `products/homepage_featured`    | high     | 1 h   | `catalog`, `products`, `featured`     | `{products: [product]}` |
//! | `products/category/{slug}`      | normal   | 30 min| `catalog`, `products` (arg = slug)    | `{category: {id, name, slug}, products: [product]}` |
//! | `categories/{id}/product_count` | low      | 1 h   | `catalog`, `categories`, `counts` (arg = id) | `{category_id, product_count}` |
//!
//! where a `product` is `{id, name, slug, price_cents, category: {id, name, slug}}`.
//! Prices are integer cents (`price_cents`), exactly as stored: no floating
//! point, the application formats them.
//!
//! What each value holds:
//!
//! * `categories/navigation`: the active root categories (`parent_id IS
//!   NULL`), each with its active subcategories, both ordered by `position`,
//!   then `name`, then `id`.
//! * `products/homepage_featured`: up to 8 products that are featured and
//!   active, in an active category, ordered by `id`.
//! * `products/category/{slug}`: the active products whose `category_id` is
//!   that category (not its subcategories), ordered by `name`, then `id`.
//!   One key per active category.
//! * `categories/{id}/product_count`: how many active products have that
//!   `category_id`. One key per active category.
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
    export_plugin, log, params, query, Context, Entry, KeySpec, Page, Plugin, Priority, Rows, WarmError,
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

/// Active roots with their active children, one row per (root, child) and
/// one row with null child columns for a root without children.
pub const SQL_NAVIGATION: &str = "\
SELECT r.id, r.name, r.slug, \
s.id AS child_id, s.name AS child_name, s.slug AS child_slug \
FROM categories r \
LEFT JOIN categories s ON s.parent_id = r.id AND s.active = TRUE \
WHERE r.parent_id IS NULL AND r.active = TRUE \
ORDER BY r.position, r.name, r.id, s.position, s.name, s.id";

/// Featured active products in active categories; `$1` is the limit.
pub const SQL_FEATURED: &str = "\
SELECT p.id, p.name, p.slug, p.price_cents, \
c.id AS category_id, c.name AS category_name, c.slug AS category_slug \
FROM products p \
JOIN categories c ON c.id = p.category_id \
WHERE p.featured = TRUE AND p.active = TRUE AND c.active = TRUE \
ORDER BY p.id \
LIMIT $1";

/// The active category with slug `$1` and its active products: no row when
/// the category is missing or inactive, one row with null product columns
/// when it has no active product.
pub const SQL_CATEGORY_PRODUCTS: &str = "\
SELECT c.id AS category_id, c.name AS category_name, c.slug AS category_slug, \
p.id, p.name, p.slug, p.price_cents \
FROM categories c \
LEFT JOIN products p ON p.category_id = c.id AND p.active = TRUE \
WHERE c.slug = $1 AND c.active = TRUE \
ORDER BY p.name, p.id";

/// The number of active products of the active category `$1`: no row when
/// the category is missing or inactive.
pub const SQL_PRODUCT_COUNT: &str = "\
SELECT c.id AS category_id, COUNT(p.id) AS product_count \
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
        query(source, sql, params).map_err(|e| query_failure(&spec.key, source, e))
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

/// A failed query: retried when the host's message looks transient
/// (a timeout, a lost connection), failed otherwise (an ungranted source,
/// a missing table, a row-cap overflow will not fix themselves).
fn query_failure(key: &str, source: &str, message: String) -> WarmError {
    let lower = message.to_ascii_lowercase();
    let transient = ["timeout", "timed out", "connection", "pool"]
        .iter()
        .any(|w| lower.contains(w));
    let reason = format!("{key}: query on source {source:?} failed: {message}");
    if transient {
        WarmError::retry(reason)
    } else {
        WarmError::fail(reason)
    }
}

// ---------------------------------------------------------------------------
// JSON shapes (pure: tested natively with hand-built rows). Structs rather
// than `json!` so that fields keep their order in the cached documents.
// ---------------------------------------------------------------------------

/// The value of `products/homepage_featured`.
#[derive(Debug, Serialize, PartialEq)]
pub struct FeaturedDoc {
    /// The featured products, by id.
    pub products: Vec<Product>,
}

/// The value of `products/category/{slug}`.
#[derive(Debug, Serialize, PartialEq)]
pub struct CategoryDoc {
    /// The category.
    pub category: CategoryRef,
    /// Its active products, by name.
    pub products: Vec<Product>,
}

/// The value of `categories/navigation`.
#[derive(Debug, Serialize, PartialEq)]
pub struct NavigationDoc {
    /// The active root categories, in menu order.
    pub categories: Vec<MenuItem>,
}

/// The value of `categories/{id}/product_count`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct CountDoc {
    /// The category id.
    pub category_id: i64,
    /// How many active products it has.
    pub product_count: i64,
}

/// `{id, name, slug}` of a category.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CategoryRef {
    /// The category id.
    pub id: i64,
    /// Its display name.
    pub name: String,
    /// Its URL slug.
    pub slug: String,
}

/// A product as the application caches it.
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
    /// The category it belongs to.
    pub category: CategoryRef,
}

/// A row of [`SQL_FEATURED`].
#[derive(Deserialize)]
struct ProductRow {
    id: i64,
    name: String,
    slug: String,
    price_cents: i64,
    category_id: i64,
    category_name: String,
    category_slug: String,
}

/// The featured products from the rows of [`SQL_FEATURED`].
fn featured(rows: Rows) -> Result<FeaturedDoc, String> {
    let products: Vec<Product> = rows
        .into_structs::<ProductRow>()?
        .into_iter()
        .map(|r| Product {
            id: r.id,
            name: r.name,
            slug: r.slug,
            price_cents: r.price_cents,
            category: CategoryRef {
                id: r.category_id,
                name: r.category_name,
                slug: r.category_slug,
            },
        })
        .collect();
    Ok(FeaturedDoc { products })
}

/// A row of [`SQL_CATEGORY_PRODUCTS`]: the product columns are null when the
/// category has no active product.
#[derive(Deserialize)]
struct CategoryProductRow {
    category_id: i64,
    category_name: String,
    category_slug: String,
    id: Option<i64>,
    name: Option<String>,
    slug: Option<String>,
    price_cents: Option<i64>,
}

/// The category and its products from the rows of [`SQL_CATEGORY_PRODUCTS`],
/// or `None` when there is no row (no such active category).
fn category_products(rows: Rows) -> Result<Option<CategoryDoc>, String> {
    let rows: Vec<CategoryProductRow> = rows.into_structs()?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let category = CategoryRef {
        id: first.category_id,
        name: first.category_name.clone(),
        slug: first.category_slug.clone(),
    };
    let mut products = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(id) = r.id else { continue };
        let (Some(name), Some(slug), Some(price_cents)) = (r.name, r.slug, r.price_cents) else {
            return Err(format!("product {id} has a null name, slug or price_cents"));
        };
        products.push(Product {
            id,
            name,
            slug,
            price_cents,
            category: category.clone(),
        });
    }
    Ok(Some(CategoryDoc { category, products }))
}

/// A row of [`SQL_NAVIGATION`].
#[derive(Deserialize)]
struct NavigationRow {
    id: i64,
    name: String,
    slug: String,
    child_id: Option<i64>,
    child_name: Option<String>,
    child_slug: Option<String>,
}

/// A root category of the navigation menu.
#[derive(Debug, Serialize, PartialEq)]
pub struct MenuItem {
    /// The category id.
    pub id: i64,
    /// Its display name.
    pub name: String,
    /// Its URL slug.
    pub slug: String,
    /// Its active subcategories, in menu order.
    pub children: Vec<CategoryRef>,
}

/// The menu from the rows of [`SQL_NAVIGATION`], which come grouped by
/// root, in menu order.
fn navigation(rows: Rows) -> Result<NavigationDoc, String> {
    let mut menu: Vec<MenuItem> = Vec::new();
    for r in rows.into_structs::<NavigationRow>()? {
        if menu.last().is_none_or(|item| item.id != r.id) {
            menu.push(MenuItem {
                id: r.id,
                name: r.name,
                slug: r.slug,
                children: Vec::new(),
            });
        }
        if let (Some(id), Some(name), Some(slug)) = (r.child_id, r.child_name, r.child_slug) {
            if let Some(item) = menu.last_mut() {
                item.children.push(CategoryRef { id, name, slug });
            }
        }
    }
    Ok(NavigationDoc { categories: menu })
}

/// The count from the rows of [`SQL_PRODUCT_COUNT`] (whose columns match
/// [`CountDoc`]), or `None` when there is no row (no such active category).
fn product_count(rows: Rows) -> Result<Option<CountDoc>, String> {
    Ok(rows.into_structs::<CountDoc>()?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(matches!(
            query_failure("k", "app", "statement timeout after 5s".into()),
            WarmError::Retry(_)
        ));
        let e = query_failure("k", "app", "source \"app\" is not granted".into());
        assert!(matches!(&e, WarmError::Fail(m) if m.contains("not granted") && m.starts_with("k:")));
    }

    fn product_row(id: i64, name: &str, cat: (i64, &str, &str)) -> Vec<SqlValue> {
        vec![
            int(id),
            text(name),
            text(&name.to_lowercase()),
            int(id * 100 + 99),
            int(cat.0),
            text(cat.1),
            text(cat.2),
        ]
    }

    #[test]
    fn featured_shape() {
        let rows = Rows::new(
            [
                "id",
                "name",
                "slug",
                "price_cents",
                "category_id",
                "category_name",
                "category_slug",
            ],
            vec![
                product_row(97, "Lamp", (20, "Books Deals", "books-deals")),
                product_row(194, "Kettle", (3, "Books", "books")),
            ],
        );
        let doc = featured(rows).unwrap();
        let text = serde_json::to_string(&doc).unwrap();
        assert!(
            text.starts_with(
                r#"{"products":[{"id":97,"name":"Lamp","slug":"lamp","price_cents":9799,"category":{"id":20,"#
            ),
            "{text}"
        );
        let doc = js(doc);
        assert_eq!(
            doc["products"][0],
            json!({
                "id": 97, "name": "Lamp", "slug": "lamp", "price_cents": 9799,
                "category": {"id": 20, "name": "Books Deals", "slug": "books-deals"}
            })
        );
        assert_eq!(doc["products"].as_array().unwrap().len(), 2);
        assert_eq!(js(featured(Rows::default()).unwrap()), json!({"products": []}));
    }

    fn category_product_rows(rows: Vec<Vec<SqlValue>>) -> Rows {
        Rows::new(
            [
                "category_id",
                "category_name",
                "category_slug",
                "id",
                "name",
                "slug",
                "price_cents",
            ],
            rows,
        )
    }

    #[test]
    fn category_products_shape() {
        let cat = || vec![int(5), text("Shoes"), text("shoes")];
        let rows = category_product_rows(vec![
            [cat(), vec![int(2), text("Boot"), text("boot"), int(1999)]].concat(),
            [cat(), vec![int(1), text("Sandal"), text("sandal"), int(999)]].concat(),
        ]);
        let doc = js(category_products(rows).unwrap().unwrap());
        assert_eq!(doc["category"], json!({"id": 5, "name": "Shoes", "slug": "shoes"}));
        let products = doc["products"].as_array().unwrap();
        assert_eq!(products.len(), 2);
        assert_eq!(products[0]["name"], "Boot");
        assert_eq!(products[1]["category"]["slug"], "shoes");
        assert_eq!(products[1]["price_cents"], 999);
    }

    #[test]
    fn empty_and_missing_categories() {
        let empty = category_product_rows(vec![vec![
            int(5),
            text("Shoes"),
            text("shoes"),
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Null,
        ]]);
        let doc = js(category_products(empty).unwrap().unwrap());
        assert_eq!(doc["products"], json!([]));
        assert_eq!(category_products(category_product_rows(vec![])).unwrap(), None);
    }

    #[test]
    fn navigation_groups_children_under_roots_in_row_order() {
        let row = |id: i64, name: &str, child: Option<(i64, &str)>| {
            let mut r = vec![int(id), text(name), text(&name.to_lowercase())];
            match child {
                Some((cid, cname)) => r.extend([int(cid), text(cname), text(&cname.to_lowercase())]),
                None => r.extend([SqlValue::Null, SqlValue::Null, SqlValue::Null]),
            }
            r
        };
        let rows = Rows::new(
            ["id", "name", "slug", "child_id", "child_name", "child_slug"],
            vec![
                row(10, "Garden", Some((15, "Tools"))),
                row(10, "Garden", Some((12, "Seeds"))),
                row(1, "Books", None),
                row(4, "Toys", Some((40, "Games"))),
            ],
        );
        let doc = js(navigation(rows).unwrap());
        let menu = doc["categories"].as_array().unwrap();
        let names: Vec<&str> = menu.iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Garden", "Books", "Toys"]);
        assert_eq!(
            menu[0]["children"],
            json!([
                {"id": 15, "name": "Tools", "slug": "tools"},
                {"id": 12, "name": "Seeds", "slug": "seeds"}
            ])
        );
        assert_eq!(menu[1]["children"], json!([]));
        assert_eq!(menu[1]["slug"], "books");
    }

    #[test]
    fn product_count_shape() {
        let rows = Rows::new(["category_id", "product_count"], vec![vec![int(3), int(47)]]);
        assert_eq!(
            product_count(rows).unwrap().map(js),
            Some(json!({"category_id": 3, "product_count": 47}))
        );
        let none = Rows::new(["category_id", "product_count"], vec![]);
        assert_eq!(product_count(none).unwrap(), None);
    }

    #[test]
    fn decoding_errors_name_the_column() {
        let rows = Rows::new(["category_id", "product_count"], vec![vec![int(3), text("x")]]);
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
