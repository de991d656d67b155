//! # preheat-guest: write a preheat warming plugin in Rust
//!
//! A preheat plugin is a WebAssembly component that knows *what* to warm:
//! [`Plugin::enumerate`] lists the keys, page by page, and [`Plugin::produce`]
//! builds their values, a batch at a time. The host decides when, how fast
//! and where the values go.
//!
//! This crate hides the generated component-model glue. A plugin author
//! implements one trait, [`Plugin`], and invokes one macro,
//! [`export_plugin!`]:
//!
//! ```
//! use preheat_guest::{export_plugin, Context, Entry, KeySpec, Page, Plugin, Priority, WarmError};
//!
//! /// Warms `greeting.{n}` for n in 0..count.
//! struct Greetings;
//!
//! impl Plugin for Greetings {
//!     fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String> {
//!         // Typed settings from the plugin's `[plugins.settings]` table.
//!         let count: u32 = ctx.setting_or("count", 3)?;
//!         let page_size: u32 = ctx.setting_or("page_size", 100)?;
//!         let start: u32 = match cursor {
//!             Some(c) => c.parse().map_err(|_| format!("bad cursor {c:?}"))?,
//!             None => 0,
//!         };
//!         let end = count.min(start.saturating_add(page_size));
//!         let keys = (start..end)
//!             .map(|n| {
//!                 KeySpec::new(format!("greeting.{n}"))
//!                     .priority(Priority::High)
//!                     .ttl(3600)
//!                     .tag("greetings")
//!                     .arg(n.to_string())
//!             })
//!             .collect();
//!         Ok(if end < count {
//!             Page::more(keys, end.to_string())
//!         } else {
//!             Page::last(keys)
//!         })
//!     }
//!
//!     fn produce(ctx: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
//!         let greeting = ctx.setting("greeting").unwrap_or("hello");
//!         keys.into_iter()
//!             .map(|key| match key.arg.as_deref() {
//!                 Some(n) => Entry::json(&serde_json::json!({ "n": n, "text": greeting })),
//!                 None => Err(WarmError::fail(format!("{} has no arg", key.key))),
//!             })
//!             .collect()
//!     }
//! }
//!
//! export_plugin!(Greetings);
//! # fn main() {
//! #     let ctx = Context::new("run-1", "proactive", [("count", "2")]);
//! #     let page = Greetings::enumerate(&ctx, None).unwrap();
//! #     assert_eq!(page.keys.len(), 2);
//! #     assert!(page.cursor.is_none());
//! #     let values = Greetings::produce(&ctx, page.keys);
//! #     assert!(values.iter().all(|v| v.is_ok()));
//! # }
//! ```
//!
//! Build it as a component with
//! `cargo build --release --target wasm32-wasip2` (the crate must have
//! `crate-type = ["cdylib"]`), then point the host at the `.wasm` file.
//!
//! ## What the host gives a plugin
//!
//! * A [`Context`] on every call: the run id, the strategy and the plugin's
//!   settings as strings, with typed accessors.
//! * [`log`]: lines in the host log, tagged with the plugin's name
//!   (`log::info("...")` or `log::info!("{}", x)`).
//! * [`cache_get`]: the current value of a key in the target backend.
//! * [`query`] and [`query_as`]: read-only SQL against the sources the
//!   plugin is granted (`[sources.NAME]` in the config, `sources = ["NAME"]`
//!   on the plugin), with typed [`Row::get`] accessors and
//!   [`Rows::into_structs`] for serde structs.
//!
//! The host functions only exist inside the host. On a native target (unit
//! tests, doctests) the [`log`] functions write to standard error and
//! [`cache_get`] and [`query`] return an error, so a plugin's [`Plugin`]
//! methods can be unit-tested natively with a [`Context`] built by
//! [`Context::new`] (and its row-shaping logic with [`Rows::new`]).
//!
//! ## Batches of millions of keys
//!
//! [`Plugin::produce`] takes owned [`KeySpec`]s and returns owned [`Entry`]s:
//! one copy of each key and each value on the way. When values are cheap to
//! build and batches large, implement [`Plugin::produce_batch`] instead: it
//! borrows each key from the host's batch ([`Keys`]) and writes each value
//! straight into the buffer the host takes back ([`Values`]).
//!
//! ## Reading a database
//!
//! Write SQL that both SQLite and PostgreSQL accept: parameters as
//! `$1, $2, …`, booleans compared as `active = TRUE`, no `::` casts. See
//! [`query`](query#portable-sql) for what comes back. The derives below need
//! `serde = { version = "1", features = ["derive"] }` in the plugin's
//! dependencies.
//!
//! ```no_run
//! use preheat_guest::{params, query, query_as, Context, Entry, KeySpec, WarmError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Product { id: i64, name: String, price_cents: i64 }
//!
//! /// Lists `products/category/{slug}` for every active category.
//! fn category_keys(ctx: &Context) -> Result<Vec<KeySpec>, String> {
//!     let source = ctx.setting("source").unwrap_or("app");
//!     let rows = query(
//!         source,
//!         "SELECT id, slug FROM categories WHERE active = TRUE ORDER BY id",
//!         &[],
//!     )?;
//!     rows.iter()
//!         .map(|row| {
//!             let slug: String = row.get("slug")?;
//!             Ok(KeySpec::new(format!("products/category/{slug}")).arg(slug))
//!         })
//!         .collect()
//! }
//!
//! /// Builds the value of one of those keys.
//! fn category_value(source: &str, slug: &str) -> Result<Entry, WarmError> {
//!     let products: Vec<Product> = query_as(
//!         source,
//!         "SELECT p.id, p.name, p.price_cents FROM products p \
//!          JOIN categories c ON c.id = p.category_id \
//!          WHERE c.slug = $1 AND p.active = TRUE ORDER BY p.name",
//!         &params![slug],
//!     )
//!     .map_err(WarmError::retry)?;
//!     Entry::json(&products)
//! }
//! ```

#![warn(missing_docs)]

mod batch;
mod context;
mod error;
mod host;
pub mod log;
mod paging;
mod query;
mod types;

pub use batch::{Key, KeyIter, Keys, Values};
pub use context::Context;
pub use error::{Error, ErrorKind};
pub use host::cache_get;
pub use paging::{keyset_page, offset_page};
pub use query::{query, query_as, FromSql, RawRows, Row, Rows, SqlValue};
pub use types::UnknownName;

/// The generated component-model bindings for `preheat:plugin@0.2.0`.
///
/// Plugin authors should not need anything in here: the useful types are
/// re-exported at the crate root.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.2",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "preheat_guest::bindings",
        additional_derives: [PartialEq],
        // `key-spec` crosses the boundary only packed, in a `key-batch`; the SDK still uses it.
        generate_unused_types: true,
    });
}

/// The version of the plugin interface (`preheat:plugin`) this SDK builds
/// against: the package in `wit/0.2/preheat.wit`, which a test holds it to.
pub const INTERFACE_VERSION: &str = "0.2.0";

/// How urgently a key should be warmed; critical keys never wait behind lower ones.
pub use bindings::preheat::plugin::types::Priority;

/// One key the plugin wants warmed; build one with [`KeySpec::new`].
pub use bindings::preheat::plugin::types::KeySpec;

pub use types::{Entry, Page};

/// Why a key could not be produced: skip it, retry it later, or fail it.
pub use bindings::preheat::plugin::types::WarmError;

/// Severity of a line written with the [`log`] functions.
pub use bindings::preheat::plugin::types::Level;

/// The raw run context as the host passes it; [`Context`] wraps it.
pub use bindings::preheat::plugin::types::RunContext;

/// Which share of a split run a plugin is asked for; see [`Context::shard`].
pub use bindings::preheat::plugin::types::Shard;

/// What a preheat plugin implements.
///
/// Both functions are associated functions (no `self`): a plugin instance
/// may be created, reused or thrown away by the host at any time, so keep
/// state in the [`Context`] settings or, when you really need it, in a
/// `static`. Export the implementation with [`export_plugin!`].
pub trait Plugin {
    /// Lists keys to warm, one page per call.
    ///
    /// `cursor` is `None` on the first call, then whatever the previous page
    /// returned in [`Page::cursor`]; return [`Page::last`] to end the listing.
    /// An `Err` fails the enumeration of this plugin with that message.
    fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String>;

    /// Builds the values of a batch in place: push exactly one outcome per
    /// key into `out`, in the order of `keys`.
    ///
    /// Implement this when a batch is large and its values cheap, so that
    /// copies count: the keys are borrowed from the host's batch and each
    /// value is written straight into the buffer the host takes back. By
    /// default it calls [`Plugin::produce`] with owned key specs.
    ///
    /// ```
    /// use preheat_guest::{Context, KeySpec, Keys, Page, Plugin, Values, WarmError};
    ///
    /// /// The value of `len:{s}` is `s`'s length in decimal.
    /// struct Lengths;
    ///
    /// impl Plugin for Lengths {
    ///     fn enumerate(_: &Context, _: Option<String>) -> Result<Page, String> {
    ///         Ok(Page::last(vec![KeySpec::new("len:abc")]))
    ///     }
    ///
    ///     fn produce_batch(_: &Context, keys: &Keys, out: &mut Values) {
    ///         for key in keys.iter() {
    ///             match key.key.strip_prefix("len:") {
    ///                 Some(s) => out.write(None, |buf| Ok(buf.extend_from_slice(s.len().to_string().as_bytes()))),
    ///                 None => out.error(WarmError::fail(format!("{} is not a len: key", key.key))),
    ///             }
    ///         }
    ///     }
    /// }
    /// # fn main() {
    /// #     let ctx = Context::new("run-1", "proactive", [("a", "b")]);
    /// #     let keys = Keys::new(&Lengths::enumerate(&ctx, None).unwrap().keys);
    /// #     let mut out = Values::default();
    /// #     Lengths::produce_batch(&ctx, &keys, &mut out);
    /// #     assert_eq!(out.into_entries()[0].as_ref().unwrap().value, b"3");
    /// # }
    /// ```
    fn produce_batch(ctx: &Context, keys: &Keys, out: &mut Values) {
        for result in Self::produce(ctx, keys.to_specs()) {
            out.push(result);
        }
    }

    /// Builds the values for a batch of keys: exactly one result per key, in
    /// the order they were given.
    ///
    /// Implement this when a batch can be built together (one query for all
    /// its keys); otherwise implement [`Plugin::produce_one`], which this
    /// calls for each key by default.
    fn produce(ctx: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
        keys.into_iter().map(|key| Self::produce_one(ctx, key)).collect()
    }

    /// Builds the value of one key; `?` on an [`Error`] retries the key when
    /// the error is transient and fails it otherwise.
    ///
    /// ```
    /// use preheat_guest::{query, params, Context, Entry, KeySpec, Page, Plugin, WarmError};
    ///
    /// struct Users;
    ///
    /// impl Plugin for Users {
    ///     fn enumerate(_: &Context, _: Option<String>) -> Result<Page, String> {
    ///         Ok(Page::last(vec![KeySpec::new("user.1").arg("1")]))
    ///     }
    ///
    ///     fn produce_one(_: &Context, key: KeySpec) -> Result<Entry, WarmError> {
    ///         let id: i64 = key.arg.as_deref().unwrap_or("").parse().map_err(|_| WarmError::fail("no id"))?;
    ///         let rows = query("app", "SELECT name FROM users WHERE id = $1", &params![id])?;
    ///         let row = rows.first().ok_or_else(|| WarmError::skip("no such user"))?;
    ///         Entry::json(&row.to_json())
    ///     }
    /// }
    /// # fn main() {
    /// #     let ctx = Context::new("run-1", "proactive", [("a", "b")]);
    /// #     let keys = Users::enumerate(&ctx, None).unwrap().keys;
    /// #     // Outside the host, `query` is refused: the key fails, it is not retried.
    /// #     assert!(matches!(Users::produce(&ctx, keys)[0], Err(WarmError::Fail(_))));
    /// # }
    /// ```
    fn produce_one(ctx: &Context, key: KeySpec) -> Result<Entry, WarmError> {
        let _ = ctx;
        Err(WarmError::fail(format!(
            "{}: the plugin implements neither Plugin::produce nor Plugin::produce_one; implement one of them",
            key.key
        )))
    }
}

/// Exports a [`Plugin`] implementation as the component's `warmer` interface.
///
/// Invoke it once per plugin crate, at module level, with the type that
/// implements [`Plugin`] (a plain name or a path):
///
/// ```
/// # use preheat_guest::{Context, Entry, KeySpec, Page, Plugin, WarmError};
/// struct Nothing;
///
/// impl Plugin for Nothing {
///     fn enumerate(_: &Context, _: Option<String>) -> Result<Page, String> {
///         Ok(Page::last(Vec::new()))
///     }
///     fn produce(_: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
///         keys.iter().map(|_| Err(WarmError::skip("nothing to do"))).collect()
///     }
/// }
///
/// preheat_guest::export_plugin!(Nothing);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            type __PreheatGuestExport = $crate::__private::Adapter<$plugin>;
    $crate::bindings::export!(__PreheatGuestExport with_types_in $crate::bindings);
        };
    };
}

/// Implementation details of [`export_plugin!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    use core::marker::PhantomData;

    use crate::bindings::exports::preheat::plugin::warmer::Guest;
    use crate::bindings::preheat::plugin::types::{self, KeyBatch, Produced};
    use crate::{Context, Keys, Plugin, RunContext, Values};

    /// Adapts a [`Plugin`] to the generated `Guest` trait.
    pub struct Adapter<P>(PhantomData<P>);

    impl<P: Plugin> Guest for Adapter<P> {
        fn enumerate(ctx: RunContext, cursor: Option<String>) -> Result<types::Page, String> {
            P::enumerate(&Context::from(ctx), cursor).map(|page| types::Page {
                keys: Keys::new(&page.keys).into_batch(),
                cursor: page.cursor,
            })
        }

        fn produce(ctx: RunContext, batch: KeyBatch) -> Produced {
            let keys = Keys::from(batch);
            let mut out = Values::with_capacity(keys.len());
            P::produce_batch(&Context::from(ctx), &keys, &mut out);
            out.into_produced()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::preheat::plugin::types::{KeyBatch, KeyRun, KeyText};

    #[test]
    fn the_interface_version_is_the_package_the_bindings_come_from() {
        let wit = include_str!("../../wit/0.2/preheat.wit");
        assert!(
            wit.lines()
                .any(|l| l == format!("package preheat:plugin@{INTERFACE_VERSION};")),
            "wit/0.2/preheat.wit does not declare preheat:plugin@{INTERFACE_VERSION}"
        );
    }

    /// A batch laid out by hand as the host lays it (keys first, then the
    /// tags and args of each key) gives back its key specs.
    #[test]
    fn a_packed_batch_unpacks_to_its_key_specs() {
        let text = |key, start, len| KeyText { key, start, len };
        let batch = KeyBatch {
            text: "k.1k.éab1".into(),
            key_ends: vec![3, 7],
            runs: vec![
                KeyRun {
                    count: 1,
                    priority: Priority::High,
                    ttl_seconds: Some(5),
                },
                KeyRun {
                    count: 1,
                    priority: Priority::Low,
                    ttl_seconds: None,
                },
            ],
            args: vec![text(0, 9, 1)],
            tags: vec![text(0, 7, 1), text(0, 8, 1)],
        };
        let keys = Keys::from(batch).to_specs();
        assert_eq!(
            keys,
            [
                KeySpec::new("k.1")
                    .priority(Priority::High)
                    .ttl(5)
                    .tags(["a", "b"])
                    .arg("1"),
                KeySpec::new("k.é").priority(Priority::Low),
            ]
        );
    }

    /// A plugin that implements only `produce` gets its results packed by the
    /// default `produce_batch`, in order.
    #[test]
    fn the_default_produce_batch_packs_what_produce_returns() {
        struct Echo;
        impl Plugin for Echo {
            fn enumerate(_: &Context, _: Option<String>) -> Result<Page, String> {
                Ok(Page::last(Vec::new()))
            }
            fn produce(_: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
                keys.into_iter()
                    .map(|k| match k.arg {
                        Some(a) => Ok(Entry::text(a).ttl(9)),
                        None => Err(WarmError::skip(k.key)),
                    })
                    .collect()
            }
        }
        let keys = Keys::new(&[
            KeySpec::new("a").arg("xy"),
            KeySpec::new("b"),
            KeySpec::new("c").arg("z"),
        ]);
        let mut out = Values::default();
        Echo::produce_batch(&Context::new("r", "s", [("k", "v")]), &keys, &mut out);
        assert_eq!(
            out.into_entries(),
            [
                Ok(Entry::text("xy").ttl(9)),
                Err(WarmError::skip("b")),
                Ok(Entry::text("z").ttl(9))
            ]
        );
    }
}
