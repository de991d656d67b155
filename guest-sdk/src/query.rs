//! Read-only SQL queries against the data sources the host grants.
//!
//! [`query`] runs one statement against a named source (`[sources.NAME]` in
//! the host config, granted to the plugin with `sources = ["NAME"]`) and
//! returns its [`Rows`]; [`query_as`] also turns every row into a struct.
//!
//! See [`query`] for portable SQL and what comes back.

use core::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Number, Value};

use crate::Error;

/// A value in a SQL row or parameter list.
///
/// Build parameters with [`From`] (`SqlValue::from(42)`, `"text".into()`,
/// `None::<i64>.into()` for `NULL`) or the [`params!`](crate::params) macro.
pub use crate::bindings::preheat::plugin::types::SqlValue;

/// The result of a query exactly as the host returns it; [`Rows`] wraps it.
pub use crate::bindings::preheat::plugin::types::Rows as RawRows;

/// Runs the read-only statement `sql` against the source named `source`,
/// with `params` bound to `$1, $2, …` in order.
///
/// The host runs it in a read-only connection or transaction with a
/// statement timeout and a row cap. A failure comes back as an [`Error`]
/// with the host's message and its kind: `Denied` for an ungranted or
/// unknown source or a write, `Invalid` for a syntax error, `Limit` for a
/// timeout or too many rows, `Transient` for a lost connection (which `?`
/// in `produce` turns into a retry).
///
/// Only works inside the host: on a native target (unit tests) it returns an
/// error saying so.
///
/// ```no_run
/// use preheat_guest::{params, query, query_as};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Product {
///     id: i64,
///     name: String,
///     price_cents: i64,
///     featured: bool, // a boolean column, or 0/1 in SQLite
/// }
///
/// # fn main() -> Result<(), preheat_guest::Error> {
/// // Typed accessors on each row.
/// let rows = query(
///     "app",
///     "SELECT id, name FROM categories WHERE active = TRUE AND id > $1 ORDER BY id LIMIT $2",
///     &params![0, 100],
/// )?;
/// for row in &rows {
///     let id: i64 = row.get("id")?;
///     let name: String = row.get("name")?;
/// }
///
/// // Or straight into structs, one per row, fields matched by column name.
/// let products: Vec<Product> = query_as(
///     "app",
///     "SELECT id, name, price_cents, featured FROM products WHERE category_id = $1",
///     &params![12],
/// )?;
/// # Ok(())
/// # }
/// ```
///
/// ## Portable SQL
///
/// The same plugin may run against SQLite on a laptop and PostgreSQL in
/// production, so write SQL both accept: bind parameters as `$1, $2, …`
/// (both drivers accept that form), compare booleans as `active = TRUE` or
/// plain `WHERE active`, and avoid `::` casts, `ILIKE` and other dialect
/// extensions.
///
/// ## What comes back
///
/// Values arrive as [`SqlValue`]s, in the shape the database stores them.
/// SQLite reports each value's storage class: a boolean column comes back as
/// `Int(0)`/`Int(1)` and a timestamp as whatever text or number was stored.
/// PostgreSQL reports the column type: `boolean` as `Boolean`, integers as
/// `Int`, `timestamptz` as RFC 3339 text (`2024-03-09T16:56:32Z`),
/// `timestamp` as the same text without the offset, `json`/`jsonb` as text;
/// types the interface does not carry (`numeric`, …) are an error naming the
/// column, so `CAST` them in SQL. The accessors smooth over the boolean
/// difference ([`bool`] accepts `0` and `1`); read timestamps as [`String`].
pub fn query(source: &str, sql: &str, params: &[SqlValue]) -> Result<Rows, Error> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::preheat::plugin::host::query(source, sql, params).map(Rows::from)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (sql, params);
        Err(Error::new(
            crate::ErrorKind::Denied,
            format!("query on source {source:?}: SQL sources are only reachable inside the preheat host"),
        ))
    }
}

/// Runs a query with [`query`] and turns every row into a `T` with
/// [`Rows::into_structs`].
///
/// Decoding errors are `Invalid` and name the source, the row and the column.
pub fn query_as<T: DeserializeOwned>(source: &str, sql: &str, params: &[SqlValue]) -> Result<Vec<T>, Error> {
    query(source, sql, params)?
        .into_structs()
        .map_err(|e| Error::invalid(format!("query on source {source:?}: {e}")))
}

/// Builds a `Vec<SqlValue>` of query parameters, converting each argument
/// with [`SqlValue::from`].
///
/// ```
/// use preheat_guest::{params, SqlValue};
///
/// let p = params![42, "shoes", true, None::<i64>];
/// assert_eq!(
///     p,
///     [SqlValue::Int(42), SqlValue::Text("shoes".into()), SqlValue::Boolean(true), SqlValue::Null]
/// );
/// assert!(params![].is_empty());
/// ```
#[macro_export]
macro_rules! params {
    () => {
        ::std::vec::Vec::<$crate::SqlValue>::new()
    };
    ($($value:expr),+ $(,)?) => {
        ::std::vec![$($crate::SqlValue::from($value)),+]
    };
}

// ---------------------------------------------------------------------------
// SqlValue helpers and conversions
// ---------------------------------------------------------------------------

impl SqlValue {
    /// The name of the variant: `null`, `int`, `float`, `text`, `bytes` or
    /// `boolean` (used in error messages).
    pub fn kind(&self) -> &'static str {
        match self {
            SqlValue::Null => "null",
            SqlValue::Int(_) => "int",
            SqlValue::Float(_) => "float",
            SqlValue::Text(_) => "text",
            SqlValue::Bytes(_) => "bytes",
            SqlValue::Boolean(_) => "boolean",
        }
    }

    /// Whether this is SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, SqlValue::Null)
    }

    /// The value as JSON: `NULL` → `null`, ints and floats → numbers
    /// (non-finite floats → `null`), text → string, bytes → array of
    /// numbers, booleans → `true`/`false`.
    ///
    /// ```
    /// use preheat_guest::SqlValue;
    /// assert_eq!(SqlValue::Int(3).to_json(), serde_json::json!(3));
    /// assert_eq!(SqlValue::Bytes(vec![1, 2]).to_json(), serde_json::json!([1, 2]));
    /// ```
    pub fn to_json(&self) -> Value {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Int(i) => Value::from(*i),
            SqlValue::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            SqlValue::Text(s) => Value::String(s.clone()),
            SqlValue::Bytes(b) => Value::Array(b.iter().map(|&x| Value::from(x)).collect()),
            SqlValue::Boolean(b) => Value::Bool(*b),
        }
    }
}

/// Shows the kind and a short preview of the value: `int 42`, `text "abc"`,
/// `bytes (3 bytes)`, `null`.
impl fmt::Display for SqlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlValue::Null => f.write_str("null"),
            SqlValue::Int(i) => write!(f, "int {i}"),
            SqlValue::Float(x) => write!(f, "float {x}"),
            SqlValue::Text(s) => {
                const MAX: usize = 40;
                match s.char_indices().nth(MAX) {
                    Some((cut, _)) => write!(f, "text {:?}…", &s[..cut]),
                    None => write!(f, "text {s:?}"),
                }
            }
            SqlValue::Bytes(b) => write!(f, "bytes ({} bytes)", b.len()),
            SqlValue::Boolean(b) => write!(f, "boolean {b}"),
        }
    }
}

macro_rules! sql_value_from {
    ($($t:ty => |$v:ident| $e:expr),+ $(,)?) => {$(
        impl From<$t> for SqlValue {
            fn from($v: $t) -> Self {
                $e
            }
        }
    )+};
}

sql_value_from! {
    i64 => |v| SqlValue::Int(v),
    i32 => |v| SqlValue::Int(v.into()),
    i16 => |v| SqlValue::Int(v.into()),
    u32 => |v| SqlValue::Int(v.into()),
    u16 => |v| SqlValue::Int(v.into()),
    f64 => |v| SqlValue::Float(v),
    f32 => |v| SqlValue::Float(v.into()),
    bool => |v| SqlValue::Boolean(v),
    &str => |v| SqlValue::Text(v.to_string()),
    String => |v| SqlValue::Text(v),
    &String => |v| SqlValue::Text(v.clone()),
    Vec<u8> => |v| SqlValue::Bytes(v),
    &[u8] => |v| SqlValue::Bytes(v.to_vec()),
}

/// `None` becomes `NULL`, `Some(v)` becomes `v`.
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(SqlValue::Null, Into::into)
    }
}

// ---------------------------------------------------------------------------
// Typed access to one value
// ---------------------------------------------------------------------------

/// A Rust type that can be read from one [`SqlValue`]; used by [`Row::get`].
///
/// | type                         | accepts                                        |
/// |------------------------------|------------------------------------------------|
/// | `i64`, `i32`, `u32`, `u64`   | `int` (in range)                               |
/// | `f64`                        | `float`, `int`                                 |
/// | `bool`                       | `boolean`, `int` 0 or 1 (SQLite booleans)      |
/// | `String`                     | `text`                                         |
/// | `Vec<u8>`                    | `bytes`, `text` (its UTF-8 bytes)              |
/// | `Option<T>`                  | `null` → `None`, anything `T` accepts          |
/// | [`SqlValue`]                 | anything                                       |
/// | [`serde_json::Value`]        | anything, as in [`SqlValue::to_json`]          |
pub trait FromSql: Sized {
    /// Reads the value, or explains what was expected and what was found.
    fn from_sql(value: &SqlValue) -> Result<Self, String>;
}

fn expected<T>(what: &str, got: &SqlValue) -> Result<T, String> {
    Err(format!("expected {what}, got {got}"))
}

macro_rules! from_sql_int {
    ($($t:ty),+) => {$(
        impl FromSql for $t {
            fn from_sql(value: &SqlValue) -> Result<Self, String> {
                match value {
                    SqlValue::Int(i) => <$t>::try_from(*i).map_err(|_| {
                        format!("expected {}, got int {i}, which is out of range", stringify!($t))
                    }),
                    other => expected(stringify!($t), other),
                }
            }
        }
    )+};
}

from_sql_int!(i64, i32, u32, u64);

impl FromSql for f64 {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Float(f) => Ok(*f),
            SqlValue::Int(i) => Ok(*i as f64),
            other => expected("f64", other),
        }
    }
}

impl FromSql for bool {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Boolean(b) => Ok(*b),
            SqlValue::Int(0) => Ok(false),
            SqlValue::Int(1) => Ok(true),
            other => expected("bool (a boolean, or int 0 or 1)", other),
        }
    }
}

impl FromSql for String {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Text(s) => Ok(s.clone()),
            other => expected("String", other),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Bytes(b) => Ok(b.clone()),
            SqlValue::Text(s) => Ok(s.clone().into_bytes()),
            other => expected("Vec<u8>", other),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        match value {
            SqlValue::Null => Ok(None),
            other => T::from_sql(other).map(Some),
        }
    }
}

impl FromSql for SqlValue {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl FromSql for Value {
    fn from_sql(value: &SqlValue) -> Result<Self, String> {
        Ok(value.to_json())
    }
}

// ---------------------------------------------------------------------------
// Rows and Row
// ---------------------------------------------------------------------------

/// The rows a [`query`] returned: column names, then rows of values in the
/// same column order.
///
/// ```
/// use preheat_guest::{Rows, SqlValue};
///
/// // The host builds these; tests can build them by hand.
/// let rows = Rows::new(
///     ["id", "name"],
///     vec![vec![SqlValue::Int(1), "Shoes".into()], vec![SqlValue::Int(2), "Hats".into()]],
/// );
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows.columns(), ["id", "name"]);
/// let names: Vec<String> = rows.iter().map(|r| r.get("name")).collect::<Result<_, _>>().unwrap();
/// assert_eq!(names, ["Shoes", "Hats"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    raw: RawRows,
}

impl Rows {
    /// Builds a result by hand (the host builds the real ones), for tests of
    /// a plugin's logic on the native target. Every row should have one value
    /// per column; a missing value reads as an error naming the column.
    pub fn new<C>(columns: impl IntoIterator<Item = C>, rows: Vec<Vec<SqlValue>>) -> Self
    where
        C: Into<String>,
    {
        Rows {
            raw: RawRows {
                columns: columns.into_iter().map(Into::into).collect(),
                rows,
            },
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.raw.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.raw.rows.is_empty()
    }

    /// The column names, in order (as the query named them: use `AS` to
    /// rename expressions and to disambiguate joins).
    pub fn columns(&self) -> &[String] {
        &self.raw.columns
    }

    /// Row number `index` (from 0), if there is one.
    pub fn get(&self, index: usize) -> Option<Row<'_>> {
        self.raw.rows.get(index).map(|values| Row {
            index,
            columns: &self.raw.columns,
            values,
        })
    }

    /// The first row, if any: handy for single-row queries.
    pub fn first(&self) -> Option<Row<'_>> {
        self.get(0)
    }

    /// The rows, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        let columns = &self.raw.columns;
        self.raw
            .rows
            .iter()
            .enumerate()
            .map(move |(index, values)| Row { index, columns, values })
    }

    /// Every row as a `T`, matching the struct's fields to column names
    /// (extra columns are ignored unless the struct denies unknown fields).
    ///
    /// Each row reads as a map from column name to value: ints and floats as
    /// numbers, text as strings, booleans as booleans, bytes as sequences of
    /// numbers and `NULL` as none/unit. A `bool` field also accepts `0` and
    /// `1` (SQLite booleans), an `f64` field an int, an `Option` field `NULL`,
    /// and a unit enum variant its name as text. `T` may also be a tuple, read
    /// by position, or [`serde_json::Value`].
    ///
    /// Errors name the row (from 0), the column and the problem.
    ///
    /// ```
    /// use preheat_guest::{Rows, SqlValue};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize, Debug, PartialEq)]
    /// struct User { id: i64, email: String, active: bool, nickname: Option<String> }
    ///
    /// let rows = Rows::new(
    ///     ["id", "email", "active", "nickname"],
    ///     vec![vec![SqlValue::Int(7), "a@example.com".into(), SqlValue::Int(1), SqlValue::Null]],
    /// );
    /// let users: Vec<User> = rows.into_structs().unwrap();
    /// assert_eq!(users[0], User { id: 7, email: "a@example.com".into(), active: true, nickname: None });
    /// ```
    pub fn into_structs<T: DeserializeOwned>(self) -> Result<Vec<T>, String> {
        self.iter().map(|row| row.deserialize()).collect()
    }

    /// Every row as a JSON object (see [`Row::to_json`]).
    pub fn to_json(&self) -> Vec<Value> {
        self.iter().map(|row| row.to_json()).collect()
    }

    /// The result as the host returned it.
    pub fn into_raw(self) -> RawRows {
        self.raw
    }
}

/// No columns and no rows.
impl Default for Rows {
    fn default() -> Self {
        Rows::new(Vec::<String>::new(), Vec::new())
    }
}

impl From<RawRows> for Rows {
    fn from(raw: RawRows) -> Self {
        Rows { raw }
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = Row<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Row<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// One row of [`Rows`], with typed access by column name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    index: usize,
    columns: &'a [String],
    values: &'a [SqlValue],
}

impl<'a> Row<'a> {
    /// The position of this row in the result, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The column names, in order.
    pub fn columns(&self) -> &'a [String] {
        self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &'a [SqlValue] {
        self.values
    }

    /// The raw value of `column`, or `None` when the result has no such
    /// column. When two columns share a name, the first wins.
    pub fn value(&self, column: &str) -> Option<&'a SqlValue> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.values.get(i)
    }

    /// The value of `column` as a `T` (see [`FromSql`] for what each type
    /// accepts).
    ///
    /// The error names the column and, when the type does not fit, the type
    /// expected and the value found; a missing column lists the columns.
    ///
    /// ```
    /// use preheat_guest::{Rows, SqlValue};
    ///
    /// let rows = Rows::new(["id", "price"], vec![vec![SqlValue::Int(1), "12.50".into()]]);
    /// let row = rows.first().unwrap();
    /// assert_eq!(row.get::<i64>("id"), Ok(1));
    /// assert_eq!(row.get::<Option<String>>("price"), Ok(Some("12.50".into())));
    /// let err = row.get::<f64>("price").unwrap_err();
    /// assert_eq!(err, r#"column "price": expected f64, got text "12.50""#);
    /// ```
    pub fn get<T: FromSql>(&self, column: &str) -> Result<T, String> {
        let value = self.require(column)?;
        T::from_sql(value).map_err(|e| format!("column {column:?}: {e}"))
    }

    /// The text of `column` parsed as JSON into a `T`: for JSON documents
    /// stored in text columns. `NULL` reads as JSON `null` (so it fits an
    /// `Option` or [`serde_json::Value`]).
    ///
    /// ```
    /// use preheat_guest::{Rows, SqlValue};
    ///
    /// let rows = Rows::new(["prefs"], vec![vec![r#"{"theme":"dark"}"#.into()]]);
    /// let prefs: serde_json::Value = rows.first().unwrap().get_json("prefs").unwrap();
    /// assert_eq!(prefs["theme"], "dark");
    /// ```
    pub fn get_json<T: DeserializeOwned>(&self, column: &str) -> Result<T, String> {
        let parsed = match self.require(column)? {
            SqlValue::Null => serde_json::from_value(Value::Null),
            SqlValue::Text(s) => serde_json::from_str(s),
            SqlValue::Bytes(b) => serde_json::from_slice(b),
            other => return Err(format!("column {column:?}: expected JSON text, got {other}")),
        };
        parsed.map_err(|e| format!("column {column:?}: invalid JSON document: {e}"))
    }

    /// The row as a JSON object, column name → [`SqlValue::to_json`].
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .columns
            .iter()
            .zip(self.values)
            .map(|(c, v)| (c.clone(), v.to_json()))
            .collect();
        Value::Object(map)
    }

    /// The row as a `T`, as in [`Rows::into_structs`].
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(RowDeserializer { row: *self }).map_err(|e| {
            let mut msg = format!("row {}", self.index);
            if let Some(column) = &e.column {
                msg.push_str(&format!(", column {column:?}"));
            }
            format!("{msg}: {}", e.message)
        })
    }

    fn require(&self, column: &str) -> Result<&'a SqlValue, String> {
        let i = self.columns.iter().position(|c| c == column).ok_or_else(|| {
            format!(
                "no column {column:?} in the result (columns: {})",
                self.columns.join(", ")
            )
        })?;
        self.values
            .get(i)
            .ok_or_else(|| format!("column {column:?}: the row has no value for it"))
    }
}

// ---------------------------------------------------------------------------
// serde: a row as a map (or a sequence), a value as itself
// ---------------------------------------------------------------------------

/// A decoding error, with the column it happened in when known.
#[derive(Debug)]
struct DeError {
    column: Option<String>,
    message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            column: None,
            message: msg.to_string(),
        }
    }
}

fn in_column(column: &str, mut e: DeError) -> DeError {
    e.column.get_or_insert_with(|| column.to_string());
    e
}

struct RowDeserializer<'a> {
    row: Row<'a>,
}

impl<'de> de::Deserializer<'de> for RowDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(RowMap { row: self.row, next: 0 })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_seq(RowSeq { row: self.row, next: 0 })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct map struct enum identifier ignored_any
    }
}

struct RowMap<'a> {
    row: Row<'a>,
    next: usize,
}

impl<'de> de::MapAccess<'de> for RowMap<'de> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        if self.next >= self.row.columns.len().min(self.row.values.len()) {
            return Ok(None);
        }
        let column: &'de str = &self.row.columns[self.next];
        seed.deserialize(de::value::BorrowedStrDeserializer::new(column))
            .map(Some)
            .map_err(|e| in_column(column, e))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let i = self.next;
        self.next += 1;
        let column = &self.row.columns[i];
        seed.deserialize(ValueDeserializer(&self.row.values[i]))
            .map_err(|e| in_column(column, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values.len().saturating_sub(self.next))
    }
}

struct RowSeq<'a> {
    row: Row<'a>,
    next: usize,
}

impl<'de> de::SeqAccess<'de> for RowSeq<'de> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(value) = self.row.values.get(self.next) else {
            return Ok(None);
        };
        let column = self.row.columns.get(self.next).map_or("?", String::as_str);
        self.next += 1;
        seed.deserialize(ValueDeserializer(value))
            .map(Some)
            .map_err(|e| in_column(column, e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.values.len().saturating_sub(self.next))
    }
}

/// One value, read the way its variant suggests, with a few portable
/// coercions (0/1 → bool, text → unit enum variant).
struct ValueDeserializer<'a>(&'a SqlValue);

impl<'de> IntoDeserializer<'de, DeError> for ValueDeserializer<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Null => visitor.visit_unit(),
            SqlValue::Int(i) => visitor.visit_i64(*i),
            SqlValue::Float(f) => visitor.visit_f64(*f),
            SqlValue::Text(s) => visitor.visit_borrowed_str(s),
            SqlValue::Bytes(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied())),
            SqlValue::Boolean(b) => visitor.visit_bool(*b),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Int(0) => visitor.visit_bool(false),
            SqlValue::Int(1) => visitor.visit_bool(true),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Bytes(b) => visitor.visit_borrowed_bytes(b),
            SqlValue::Text(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            SqlValue::Text(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn one_row(columns: &[&str], values: Vec<SqlValue>) -> Rows {
        Rows::new(columns.iter().copied(), vec![values])
    }

    #[test]
    fn from_impls() {
        assert_eq!(SqlValue::from(5i64), SqlValue::Int(5));
        assert_eq!(SqlValue::from(-5i32), SqlValue::Int(-5));
        assert_eq!(SqlValue::from(u32::MAX), SqlValue::Int(4_294_967_295));
        assert_eq!(SqlValue::from(1.5f64), SqlValue::Float(1.5));
        assert_eq!(SqlValue::from(true), SqlValue::Boolean(true));
        assert_eq!(SqlValue::from("a"), SqlValue::Text("a".into()));
        assert_eq!(SqlValue::from(String::from("b")), SqlValue::Text("b".into()));
        assert_eq!(SqlValue::from(vec![1u8, 2]), SqlValue::Bytes(vec![1, 2]));
        assert_eq!(SqlValue::from(None::<i64>), SqlValue::Null);
        assert_eq!(SqlValue::from(Some("x")), SqlValue::Text("x".into()));
    }

    #[test]
    fn params_macro() {
        let slug = String::from("shoes");
        let p = params![1, &slug, Some(2.5), None::<&str>, false,];
        assert_eq!(
            p,
            [
                SqlValue::Int(1),
                SqlValue::Text("shoes".into()),
                SqlValue::Float(2.5),
                SqlValue::Null,
                SqlValue::Boolean(false)
            ]
        );
        assert_eq!(params![], Vec::<SqlValue>::new());
    }

    #[test]
    fn typed_get_accepts_and_coerces() {
        let rows = one_row(
            &["i", "f", "t", "b", "bi", "n", "bytes"],
            vec![
                SqlValue::Int(7),
                SqlValue::Float(2.5),
                "hi".into(),
                SqlValue::Boolean(true),
                SqlValue::Int(0),
                SqlValue::Null,
                SqlValue::Bytes(vec![1, 2]),
            ],
        );
        let r = rows.first().unwrap();
        assert_eq!(r.get::<i64>("i"), Ok(7));
        assert_eq!(r.get::<u32>("i"), Ok(7));
        assert_eq!(r.get::<f64>("i"), Ok(7.0));
        assert_eq!(r.get::<f64>("f"), Ok(2.5));
        assert_eq!(r.get::<String>("t"), Ok("hi".into()));
        assert_eq!(r.get::<bool>("b"), Ok(true));
        assert_eq!(r.get::<bool>("bi"), Ok(false));
        assert_eq!(r.get::<Option<i64>>("n"), Ok(None));
        assert_eq!(r.get::<Option<i64>>("i"), Ok(Some(7)));
        assert_eq!(r.get::<Vec<u8>>("bytes"), Ok(vec![1, 2]));
        assert_eq!(r.get::<Vec<u8>>("t"), Ok(b"hi".to_vec()));
        assert_eq!(r.get::<SqlValue>("n"), Ok(SqlValue::Null));
        assert_eq!(r.get::<Value>("bytes"), Ok(json!([1, 2])));
    }

    #[test]
    fn typed_get_errors_name_column_and_actual_type() {
        let rows = one_row(
            &["id", "name", "n", "big", "flag"],
            vec![
                SqlValue::Int(-1),
                "x".into(),
                SqlValue::Null,
                SqlValue::Int(i64::MAX),
                SqlValue::Int(2),
            ],
        );
        let r = rows.first().unwrap();
        assert_eq!(
            r.get::<String>("id").unwrap_err(),
            r#"column "id": expected String, got int -1"#
        );
        assert_eq!(
            r.get::<i64>("name").unwrap_err(),
            r#"column "name": expected i64, got text "x""#
        );
        assert_eq!(r.get::<i64>("n").unwrap_err(), r#"column "n": expected i64, got null"#);
        assert!(r.get::<u32>("id").unwrap_err().contains("out of range"));
        assert!(r.get::<i32>("big").unwrap_err().contains("out of range"));
        assert!(r.get::<bool>("flag").unwrap_err().contains("got int 2"));
        let missing = r.get::<i64>("nope").unwrap_err();
        assert_eq!(
            missing,
            r#"no column "nope" in the result (columns: id, name, n, big, flag)"#
        );
    }

    #[test]
    fn long_text_is_shortened_in_errors() {
        let long = "a".repeat(100);
        let err = i64::from_sql(&SqlValue::Text(long)).unwrap_err();
        assert!(err.ends_with("…"), "{err}");
        assert!(err.len() < 80, "{err}");
    }

    #[test]
    fn json_conversion() {
        let rows = one_row(
            &["i", "f", "t", "b", "n", "bytes", "nan"],
            vec![
                SqlValue::Int(1),
                SqlValue::Float(0.5),
                "s".into(),
                SqlValue::Boolean(false),
                SqlValue::Null,
                SqlValue::Bytes(vec![255]),
                SqlValue::Float(f64::NAN),
            ],
        );
        assert_eq!(
            rows.to_json(),
            [json!({"i": 1, "f": 0.5, "t": "s", "b": false, "n": null, "bytes": [255], "nan": null})]
        );
    }

    #[test]
    fn get_json_parses_text_columns() {
        let rows = one_row(
            &["doc", "n", "bad", "num"],
            vec![r#"{"a":[1,2]}"#.into(), SqlValue::Null, "{".into(), SqlValue::Int(1)],
        );
        let r = rows.first().unwrap();
        assert_eq!(r.get_json::<Value>("doc"), Ok(json!({"a": [1, 2]})));
        assert_eq!(r.get_json::<Option<Value>>("n"), Ok(None));
        assert!(r
            .get_json::<Value>("bad")
            .unwrap_err()
            .starts_with(r#"column "bad": invalid JSON"#));
        assert!(r.get_json::<Value>("num").unwrap_err().contains("got int 1"));
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum Tier {
        #[serde(rename = "gold")]
        Gold,
        #[serde(rename = "basic")]
        Basic,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Product {
        id: i64,
        name: String,
        price: f64,
        active: bool,
        featured: bool,
        note: Option<String>,
        blob: Vec<u8>,
        tier: Tier,
    }

    #[test]
    fn into_structs_by_column_name() {
        let rows = Rows::new(
            [
                "id", "name", "price", "active", "featured", "note", "blob", "tier", "extra",
            ],
            vec![
                vec![
                    SqlValue::Int(1),
                    "Hat".into(),
                    SqlValue::Int(10),
                    SqlValue::Int(1),
                    SqlValue::Boolean(false),
                    SqlValue::Null,
                    SqlValue::Bytes(vec![1, 2]),
                    "gold".into(),
                    SqlValue::Int(0),
                ],
                vec![
                    SqlValue::Int(2),
                    "Cap".into(),
                    SqlValue::Float(9.5),
                    SqlValue::Boolean(true),
                    SqlValue::Int(0),
                    "new".into(),
                    SqlValue::Bytes(vec![]),
                    "basic".into(),
                    SqlValue::Null,
                ],
            ],
        );
        let products: Vec<Product> = rows.into_structs().unwrap();
        assert_eq!(
            products,
            [
                Product {
                    id: 1,
                    name: "Hat".into(),
                    price: 10.0,
                    active: true,
                    featured: false,
                    note: None,
                    blob: vec![1, 2],
                    tier: Tier::Gold,
                },
                Product {
                    id: 2,
                    name: "Cap".into(),
                    price: 9.5,
                    active: true,
                    featured: false,
                    note: Some("new".into()),
                    blob: vec![],
                    tier: Tier::Basic,
                },
            ]
        );
    }

    #[test]
    fn into_structs_tuples_and_json() {
        let rows = Rows::new(["id", "name"], vec![vec![SqlValue::Int(3), "c".into()]]);
        let tuples: Vec<(i64, String)> = rows.clone().into_structs().unwrap();
        assert_eq!(tuples, [(3, "c".to_string())]);
        let docs: Vec<Value> = rows.into_structs().unwrap();
        assert_eq!(docs, [json!({"id": 3, "name": "c"})]);
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Strict {
        id: i64,
        active: bool,
    }

    #[test]
    fn into_structs_errors_name_row_and_column() {
        let rows = Rows::new(
            ["id", "active"],
            vec![
                vec![SqlValue::Int(1), SqlValue::Boolean(true)],
                vec![SqlValue::Int(2), "yes".into()],
            ],
        );
        let err = rows.into_structs::<Strict>().unwrap_err();
        assert!(
            err.starts_with(r#"row 1, column "active": invalid type: string "yes""#),
            "{err}"
        );

        let rows = Rows::new(["id"], vec![vec![SqlValue::Int(1)]]);
        let err = rows.into_structs::<Strict>().unwrap_err();
        assert_eq!(err, "row 0: missing field `active`");

        let rows = Rows::new(["id", "active"], vec![vec![SqlValue::Null, SqlValue::Int(1)]]);
        let err = rows.into_structs::<Strict>().unwrap_err();
        assert!(err.starts_with(r#"row 0, column "id": invalid type: unit"#), "{err}");
    }

    #[test]
    fn rows_accessors() {
        let rows = Rows::new(["a"], vec![vec![SqlValue::Int(1)], vec![SqlValue::Int(2)]]);
        assert_eq!(rows.len(), 2);
        assert!(!rows.is_empty());
        assert_eq!(rows.get(1).unwrap().index(), 1);
        assert!(rows.get(2).is_none());
        let sum: i64 = (&rows).into_iter().map(|r| r.get::<i64>("a").unwrap()).sum();
        assert_eq!(sum, 3);
        assert_eq!(rows.first().unwrap().value("a"), Some(&SqlValue::Int(1)));
        assert_eq!(rows.first().unwrap().value("b"), None);
        assert!(Rows::default().is_empty());
        let raw = rows.into_raw();
        assert_eq!(raw.columns, ["a"]);
    }

    #[test]
    fn short_rows_report_missing_values() {
        let rows = Rows::new(["a", "b"], vec![vec![SqlValue::Int(1)]]);
        let err = rows.first().unwrap().get::<i64>("b").unwrap_err();
        assert!(err.contains("no value"), "{err}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn query_outside_the_host_is_an_error() {
        let err = query("app", "SELECT 1", &[]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Denied);
        assert!(err.message.contains("\"app\""), "{err}");
        assert!(err.message.contains("only reachable inside the preheat host"), "{err}");
        let err = query_as::<Value>("app", "SELECT 1", &params![1]).unwrap_err();
        assert!(err.message.contains("inside the preheat host"), "{err}");
    }
}
