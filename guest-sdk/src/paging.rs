//! Paging a listing across `enumerate` calls: [`offset_page`] for listings
//! ordered by position, [`keyset_page`] for listings ordered by a unique
//! column (stable while rows are added and removed, and fast on large
//! tables). Both ask for one row more than a page to know whether another
//! page follows, and carry their position in the page's cursor.

use core::fmt::Display;
use core::str::FromStr;

use crate::{Error, KeySpec, Page};

/// One page of a listing read by offset: `fetch(offset, limit)` returns up
/// to `limit` key specs starting at row `offset` (`LIMIT $2 OFFSET $1`);
/// it is asked for `page_size + 1`, so the page is the last one when fewer
/// come back.
///
/// ```
/// use preheat_guest::{offset_page, KeySpec};
///
/// let ids: Vec<u64> = (0..5).collect();
/// let fetch = |offset: u64, limit: u32| -> Result<Vec<KeySpec>, String> {
///     Ok(ids.iter().skip(offset as usize).take(limit as usize).map(|i| KeySpec::new(format!("k.{i}"))).collect())
/// };
/// let first = offset_page(None, 2, fetch).unwrap();
/// assert_eq!(first.keys.len(), 2);
/// let second = offset_page(first.cursor, 2, fetch).unwrap();
/// assert_eq!(second.keys[0].key, "k.2");
/// let last = offset_page(second.cursor, 2, fetch).unwrap();
/// assert_eq!((last.keys.len(), last.is_last()), (1, true));
/// ```
pub fn offset_page<E>(
    cursor: Option<String>,
    page_size: u32,
    fetch: impl FnOnce(u64, u32) -> Result<Vec<KeySpec>, E>,
) -> Result<Page, Error>
where
    E: Into<Error>,
{
    let page_size = checked_page_size(page_size)?;
    let offset: u64 = parse_cursor(cursor.as_deref(), "an offset")?.unwrap_or(0);
    let mut keys = fetch(offset, page_size + 1).map_err(Into::into)?;
    if keys.len() > page_size as usize {
        keys.truncate(page_size as usize);
        Ok(Page::more(keys, (offset + u64::from(page_size)).to_string()))
    } else {
        Ok(Page::last(keys))
    }
}

/// One page of a listing read by key set: `fetch(after, limit)` returns up
/// to `limit` rows ordered by a unique sort value `K`, each with its key
/// spec, starting after `after` (`WHERE id > $1 ORDER BY id LIMIT $2`;
/// `None` on the first page). It is asked for `page_size + 1`; the cursor
/// is the sort value of the page's last row.
///
/// ```
/// use preheat_guest::{keyset_page, KeySpec};
///
/// let ids = [3_i64, 8, 20, 21];
/// let fetch = |after: Option<i64>, limit: u32| -> Result<Vec<(i64, KeySpec)>, String> {
///     Ok(ids.iter().filter(|&&id| after.map_or(true, |a| id > a)).take(limit as usize)
///         .map(|&id| (id, KeySpec::new(format!("user.{id}")))).collect())
/// };
/// let first = keyset_page(None, 3, fetch).unwrap();
/// assert_eq!(first.cursor.as_deref(), Some("20"));
/// let last = keyset_page(first.cursor, 3, fetch).unwrap();
/// assert_eq!((last.keys[0].key.as_str(), last.is_last()), ("user.21", true));
/// ```
pub fn keyset_page<K, E>(
    cursor: Option<String>,
    page_size: u32,
    fetch: impl FnOnce(Option<K>, u32) -> Result<Vec<(K, KeySpec)>, E>,
) -> Result<Page, Error>
where
    K: FromStr + Display,
    E: Into<Error>,
{
    let page_size = checked_page_size(page_size)?;
    let after = parse_cursor::<K>(cursor.as_deref(), "a key-set position")?;
    let mut rows = fetch(after, page_size + 1).map_err(Into::into)?;
    let more = rows.len() > page_size as usize;
    rows.truncate(page_size as usize);
    let cursor = rows.last().map(|(k, _)| k.to_string());
    let keys = rows.into_iter().map(|(_, spec)| spec).collect();
    Ok(match cursor.filter(|_| more) {
        Some(cursor) => Page::more(keys, cursor),
        None => Page::last(keys),
    })
}

/// A page size between 1 and `u32::MAX - 1` (one more row is asked for).
fn checked_page_size(page_size: u32) -> Result<u32, Error> {
    if page_size == 0 || page_size == u32::MAX {
        return Err(Error::invalid(format!(
            "page size {page_size} is outside 1 ..= {}; set a page size such as 500",
            u32::MAX - 1
        )));
    }
    Ok(page_size)
}

fn parse_cursor<K: FromStr>(cursor: Option<&str>, what: &str) -> Result<Option<K>, Error> {
    match cursor {
        None => Ok(None),
        Some(c) => c.parse().map(Some).map_err(|_| {
            Error::invalid(format!(
                "cursor {c:?} is not {what}; the cursor must be the one the previous page returned"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(i: u64) -> KeySpec {
        KeySpec::new(format!("k.{i}"))
    }

    /// Every row listed exactly once whatever the page size, including a
    /// listing that is an exact multiple of it (a last page that is empty).
    #[test]
    fn pages_cover_every_row_once() {
        for total in [0_u64, 1, 5, 6, 7] {
            for page_size in [1_u32, 2, 3, 6] {
                let (mut by_offset, mut by_keyset) = (Vec::new(), Vec::new());
                let mut cursor = None;
                loop {
                    let page = offset_page(cursor, page_size, |offset, limit| {
                        Ok::<_, String>((offset..total).take(limit as usize).map(spec).collect())
                    })
                    .unwrap();
                    assert!(page.keys.len() <= page_size as usize);
                    by_offset.extend(page.keys.iter().map(|k| k.key.clone()));
                    if page.is_last() {
                        break;
                    }
                    cursor = page.cursor;
                }
                let mut cursor = None;
                loop {
                    let page = keyset_page(cursor, page_size, |after: Option<u64>, limit| {
                        let from = after.map_or(0, |a| a + 1);
                        Ok::<_, String>((from..total).take(limit as usize).map(|i| (i, spec(i))).collect())
                    })
                    .unwrap();
                    by_keyset.extend(page.keys.iter().map(|k| k.key.clone()));
                    if page.is_last() {
                        break;
                    }
                    cursor = page.cursor;
                }
                let all: Vec<String> = (0..total).map(|i| format!("k.{i}")).collect();
                assert_eq!(by_offset, all, "offset, {total} rows by {page_size}");
                assert_eq!(by_keyset, all, "keyset, {total} rows by {page_size}");
            }
        }
    }

    #[test]
    fn bad_cursors_and_page_sizes_are_invalid_and_say_so() {
        let none = |_: u64, _: u32| Ok::<_, String>(Vec::new());
        let err = offset_page(Some("x".into()), 10, none).unwrap_err();
        assert!(err.message.contains("cursor \"x\" is not an offset"), "{err}");
        let err = offset_page(None, 0, none).unwrap_err();
        assert!(err.message.contains("page size 0"), "{err}");
        let err = keyset_page(Some("x".into()), 10, |_: Option<i64>, _| Ok::<_, String>(Vec::new())).unwrap_err();
        assert!(err.message.contains("key-set position"), "{err}");
        // The fetch's own error comes back, typed.
        let err = offset_page(None, 10, |_, _| Err(Error::transient("lost"))).unwrap_err();
        assert!(err.is_transient());
    }
}
