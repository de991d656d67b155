//! The SQLite side of a source. Every connection is locked down once, when
//! it opens: no ATTACH (`SQLITE_LIMIT_ATTACHED` = 0), defensive mode, an
//! untrusted schema, no extension loading, and an authorizer that allows
//! reads only. Every query is then checked on the connection before sqlx runs
//! it: exactly one statement, allowed by the authorizer, and read-only by
//! `sqlite3_stmt_readonly` (VACUUM never reaches the authorizer when it is
//! prepared, only this check and the ATTACH it makes inside refuse it).

use libsqlite3_sys as ffi;
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

/// Functions a query may not call even inside a SELECT: they load code or
/// touch files (the last three exist only in the sqlite3 shell or extensions;
/// refused in case one is ever linked in).
const DENIED_FUNCTIONS: [&str; 5] = ["load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"];

/// What a refused query may do instead, appended to every refusal.
const ONLY_READS: &str = "a plugin may run one read-only statement per query (SELECT, or WITH … SELECT)";

thread_local! {
    /// The first action the authorizer refused during the current prepare on
    /// this thread (the authorizer runs synchronously inside `sqlite3_prepare`).
    static REFUSED: Cell<Option<String>> = const { Cell::new(None) };
}

/// Locks a fresh connection down (see the module docs); run once per
/// connection by the pool's `after_connect`, before any plugin SQL.
pub(super) async fn lock_down(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let settings = [
        (ffi::SQLITE_DBCONFIG_DEFENSIVE, 1, "SQLITE_DBCONFIG_DEFENSIVE"),
        (ffi::SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, "SQLITE_DBCONFIG_TRUSTED_SCHEMA"),
        (
            ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
            0,
            "SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION",
        ),
    ];
    // SAFETY: `db` is the open handle the lock gives us exclusive use of; the
    // authorizer is a plain function with no user data to outlive.
    unsafe {
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        for (op, wanted, name) in settings {
            let mut now: c_int = -1;
            let rc = ffi::sqlite3_db_config(db, op, wanted as c_int, &mut now as *mut c_int);
            if rc != ffi::SQLITE_OK || now != wanted {
                return Err(lock_down_failed(&format!("{name} = {wanted} (rc {rc}, now {now})")));
            }
        }
        let rc = ffi::sqlite3_set_authorizer(db, Some(authorize), ptr::null_mut());
        if rc != ffi::SQLITE_OK {
            return Err(lock_down_failed(&format!("sqlite3_set_authorizer (rc {rc})")));
        }
    }
    Ok(())
}

fn lock_down_failed(what: &str) -> sqlx::Error {
    sqlx::Error::Configuration(format!("could not lock the SQLite source connection down: {what} failed").into())
}

/// Checks `sql` on the connection `db` before it runs: one statement, reads
/// only. Returns its number of result columns, or why it is refused.
///
/// # Safety
/// `db` must be an open connection locked down by [`lock_down`] that no other
/// thread uses during the call (hold its `LockedSqliteHandle`).
pub(super) unsafe fn check(db: *mut ffi::sqlite3, sql: &str) -> Result<usize, Refusal> {
    if sql.contains('\0') {
        return Err(Refusal::Refused(format!(
            "the SQL contains a NUL character; {ONLY_READS}"
        )));
    }
    let first = prepare(db, sql.as_bytes())?;
    let Some((stmt, rest)) = first else {
        return Err(Refusal::Refused(format!("the SQL holds no statement; {ONLY_READS}")));
    };
    let read_only = ffi::sqlite3_stmt_readonly(stmt.0) != 0;
    let columns = ffi::sqlite3_column_count(stmt.0).max(0) as usize;
    drop(stmt);
    if !read_only {
        return Err(Refusal::Refused(format!(
            "the statement is not read-only (VACUUM, REINDEX, writes and schema changes are refused); {ONLY_READS}"
        )));
    }
    // Whatever follows the first statement must be nothing but blanks and comments.
    match prepare(db, rest) {
        Ok(None) => Ok(columns),
        Ok(Some(_)) | Err(_) => Err(Refusal::Refused(format!(
            "more than one statement ({:?} follows the first); {ONLY_READS}",
            preview(rest)
        ))),
    }
}

/// Caps the length of any string or BLOB the connection builds or returns
/// (`SQLITE_LIMIT_LENGTH`); beyond it a query fails with SQLITE_TOOBIG.
///
/// # Safety
/// As for [`check`].
pub(super) unsafe fn cap_values(db: *mut ffi::sqlite3, bytes: u64) {
    ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_LENGTH, bytes.clamp(1, i32::MAX as u64) as c_int);
}

/// Why a query was refused, or its SQL error.
#[derive(Debug, PartialEq)]
pub(super) enum Refusal {
    /// The query breaks a rule of the sandbox.
    Refused(String),
    /// SQLite could not prepare it (a syntax error, an unknown table).
    Invalid(String),
}

/// A prepared statement, finalized on drop.
struct Stmt(*mut ffi::sqlite3_stmt);

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement came from `sqlite3_prepare_v2` and is finalized once.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

/// Prepares the first statement of `sql`: `None` if it holds only blanks and
/// comments, else the statement and the text after it.
unsafe fn prepare(db: *mut ffi::sqlite3, sql: &[u8]) -> Result<Option<(Stmt, &[u8])>, Refusal> {
    REFUSED.set(None);
    let mut stmt = ptr::null_mut();
    let mut tail: *const c_char = ptr::null();
    let len = c_int::try_from(sql.len()).map_err(|_| Refusal::Refused("the SQL is longer than 2 GiB".into()))?;
    let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr() as *const c_char, len, &mut stmt, &mut tail);
    let refused = REFUSED.take();
    if rc != ffi::SQLITE_OK {
        if !stmt.is_null() {
            ffi::sqlite3_finalize(stmt);
        }
        return Err(match refused {
            Some(action) => Refusal::Refused(format!("{action} is not allowed; {ONLY_READS}")),
            None => Refusal::Invalid(CStr::from_ptr(ffi::sqlite3_errmsg(db)).to_string_lossy().into_owned()),
        });
    }
    if stmt.is_null() {
        return Ok(None);
    }
    let used = if tail.is_null() {
        sql.len()
    } else {
        (tail as usize - sql.as_ptr() as usize).min(sql.len())
    };
    Ok(Some((Stmt(stmt), &sql[used..])))
}

/// The start of `rest`, for a message.
fn preview(rest: &[u8]) -> String {
    let text = String::from_utf8_lossy(rest);
    let text = text.trim();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The authorizer: allows SELECT, reading columns, recursive CTEs and
/// functions other than [`DENIED_FUNCTIONS`]; denies everything else (writes,
/// schema changes, TEMP objects, PRAGMA, ATTACH, DETACH, transactions,
/// ANALYZE, REINDEX, virtual tables) and records what it denied.
unsafe extern "C" fn authorize(
    _user: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    database: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: SQLite passes NUL-terminated strings or NULL.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let refused = match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_READ | ffi::SQLITE_RECURSIVE => return ffi::SQLITE_OK,
        ffi::SQLITE_FUNCTION => {
            let name = text(arg2);
            if !DENIED_FUNCTIONS.iter().any(|d| d.eq_ignore_ascii_case(&name)) {
                return ffi::SQLITE_OK;
            }
            format!("the function {name}()")
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => {
            let table = text(arg1);
            let verb = action_name(action);
            if table.starts_with("sqlite_temp_") || (table.starts_with("sqlite_") && text(database) == "temp") {
                format!("creating a TEMP object ({verb} on {table})")
            } else if table.starts_with("sqlite_") {
                format!("changing the schema ({verb} on {table})")
            } else {
                format!("{verb} on {table}")
            }
        }
        ffi::SQLITE_ATTACH => format!("ATTACH of {:?}", text(arg1)),
        ffi::SQLITE_PRAGMA => format!("PRAGMA {}", text(arg1)),
        ffi::SQLITE_TRANSACTION => format!("{} (transaction control)", text(arg1)),
        other => {
            let subject = text(arg1);
            if subject.is_empty() {
                action_name(other).to_string()
            } else {
                format!("{} {subject}", action_name(other))
            }
        }
    };
    let _ = REFUSED.try_with(|r| {
        let first = r.take();
        r.set(Some(first.unwrap_or(refused)));
    });
    ffi::SQLITE_DENY
}

/// The SQL an authorizer action code stands for.
fn action_name(action: c_int) -> &'static str {
    match action {
        ffi::SQLITE_CREATE_INDEX => "CREATE INDEX",
        ffi::SQLITE_CREATE_TABLE => "CREATE TABLE",
        ffi::SQLITE_CREATE_TRIGGER => "CREATE TRIGGER",
        ffi::SQLITE_CREATE_VIEW => "CREATE VIEW",
        ffi::SQLITE_CREATE_TEMP_INDEX => "CREATE TEMP INDEX",
        ffi::SQLITE_CREATE_TEMP_TABLE => "CREATE TEMP TABLE",
        ffi::SQLITE_CREATE_TEMP_TRIGGER => "CREATE TEMP TRIGGER",
        ffi::SQLITE_CREATE_TEMP_VIEW => "CREATE TEMP VIEW",
        ffi::SQLITE_CREATE_VTABLE => "CREATE VIRTUAL TABLE",
        ffi::SQLITE_DROP_INDEX | ffi::SQLITE_DROP_TEMP_INDEX => "DROP INDEX",
        ffi::SQLITE_DROP_TABLE | ffi::SQLITE_DROP_TEMP_TABLE => "DROP TABLE",
        ffi::SQLITE_DROP_TRIGGER | ffi::SQLITE_DROP_TEMP_TRIGGER => "DROP TRIGGER",
        ffi::SQLITE_DROP_VIEW | ffi::SQLITE_DROP_TEMP_VIEW => "DROP VIEW",
        ffi::SQLITE_DROP_VTABLE => "DROP VIRTUAL TABLE",
        ffi::SQLITE_INSERT => "INSERT",
        ffi::SQLITE_UPDATE => "UPDATE",
        ffi::SQLITE_DELETE => "DELETE",
        ffi::SQLITE_DETACH => "DETACH",
        ffi::SQLITE_ALTER_TABLE => "ALTER TABLE",
        ffi::SQLITE_REINDEX => "REINDEX",
        ffi::SQLITE_ANALYZE => "ANALYZE",
        ffi::SQLITE_SAVEPOINT => "SAVEPOINT",
        ffi::SQLITE_COPY => "COPY",
        _ => "an action other than reading",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{AssertSqlSafe, Connection, SqliteConnection};

    /// A read-only, locked-down connection to a fresh database file with a
    /// `users` table, and the directory holding it.
    async fn locked_down() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let create = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let mut setup = SqliteConnection::connect_with(&create).await.unwrap();
        sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');")
            .execute(&mut setup)
            .await
            .unwrap();
        setup.close().await.unwrap();
        let read = SqliteConnectOptions::new().filename(&path).read_only(true);
        let mut conn = SqliteConnection::connect_with(&read).await.unwrap();
        lock_down(&mut conn).await.unwrap();
        (dir, conn)
    }

    async fn check_on(conn: &mut SqliteConnection, sql: &str) -> Result<usize, Refusal> {
        let mut handle = conn.lock_handle().await.unwrap();
        // SAFETY: the handle is locked and was locked down.
        unsafe { check(handle.as_raw_handle().as_ptr(), sql) }
    }

    #[tokio::test]
    async fn reads_pass_with_their_column_count() {
        let (_dir, mut conn) = locked_down().await;
        for (sql, columns) in [
            ("SELECT * FROM users", 2),
            ("select id from users where id = ?1", 1),
            ("WITH u AS (SELECT id FROM users) SELECT id, id FROM u", 2),
            (
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) SELECT x FROM c",
                1,
            ),
            ("SELECT 1; -- a trailing comment", 1),
            ("SELECT 1 ; /* and another */ ;", 1),
            ("SELECT * FROM json_each('[1, 2]')", 8),
            (
                "SELECT count(*), zeroblob(10), randomblob(4), upper(name) FROM users",
                4,
            ),
        ] {
            assert_eq!(check_on(&mut conn, sql).await, Ok(columns), "{sql}");
        }
    }

    #[tokio::test]
    async fn every_statement_class_but_reads_is_refused_with_what_was_refused() {
        let (dir, mut conn) = locked_down().await;
        let target = dir.path().join("copy.db");
        let cases = [
            ("SELECT 1; SELECT 2", "more than one statement"),
            ("SELECT 1; /* x */ ; DELETE FROM users", "more than one statement"),
            ("SELECT 1;\nATTACH 'x.db' AS x", "more than one statement"),
            ("SELECT 1\0; ATTACH 'x.db' AS x", "NUL"),
            ("", "no statement"),
            ("-- nothing", "no statement"),
            (
                "CREATE TEMP VIEW users AS SELECT 9 AS id, 'evil' AS name",
                "creating a TEMP object",
            ),
            ("create temporary table t (x)", "creating a TEMP object"),
            (
                "CREATE TEMP TRIGGER tr AFTER INSERT ON users BEGIN SELECT 1; END",
                "CREATE TEMP TRIGGER tr",
            ),
            ("CREATE VIEW v AS SELECT 1", "changing the schema"),
            ("INSERT INTO users VALUES (2, 'evil')", "INSERT on users"),
            ("UPDATE users SET name = 'evil'", "UPDATE on users"),
            ("DELETE FROM users", "DELETE on users"),
            ("WITH x AS (SELECT 1) DELETE FROM users", "DELETE on users"),
            ("DROP TABLE users", "DELETE on sqlite_master"),
            ("ATTACH DATABASE '/etc/passwd' AS p", "ATTACH of \"/etc/passwd\""),
            ("DETACH DATABASE main", "DETACH main"),
            ("VACUUM", "not read-only"),
            ("vacuum main", "not read-only"),
            ("/* hi */ VaCuUm InTo '/tmp/preheat-never.db'", "not read-only"),
            ("VACUUM INTO 'file:/tmp/preheat-never.db?mode=rwc'", "not read-only"),
            ("EXPLAIN VACUUM INTO '/tmp/preheat-never.db'", "not read-only"),
            ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
            ("PRAGMA writable_schema = ON", "PRAGMA writable_schema"),
            ("PRAGMA table_info(users)", "PRAGMA table_info"),
            ("SELECT load_extension('/tmp/evil.so')", "the function load_extension()"),
            (
                "SELECT LOAD_EXTENSION('/tmp/evil.so', 'init')",
                "the function load_extension()",
            ),
            ("SELECT fts3_tokenizer('simple')", "the function fts3_tokenizer()"),
            ("BEGIN", "BEGIN (transaction control)"),
            ("SAVEPOINT s", "SAVEPOINT"),
            ("ANALYZE", "changing the schema"),
            ("ALTER TABLE users RENAME TO people", "ALTER TABLE"),
            ("CREATE VIRTUAL TABLE temp.f USING fts5(a)", "creating a TEMP object"),
        ];
        for (sql, what) in cases {
            match check_on(&mut conn, sql).await {
                Err(Refusal::Refused(why)) => {
                    assert!(why.contains(what), "{sql:?}: {why}");
                    assert!(why.contains(ONLY_READS), "{sql:?}: {why}");
                }
                other => panic!("{sql:?} was not refused: {other:?}"),
            }
        }
        assert!(!std::path::Path::new("/tmp/preheat-never.db").exists());
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn a_syntax_error_is_an_error_not_a_refusal() {
        let (_dir, mut conn) = locked_down().await;
        match check_on(&mut conn, "SELEC 1").await {
            Err(Refusal::Invalid(e)) => assert!(e.contains("syntax error"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn even_a_prepared_vacuum_or_attach_cannot_run_on_a_locked_down_connection() {
        // Past the statement check, the connection itself still refuses:
        // ATTACH (which VACUUM INTO does inside) is over SQLITE_LIMIT_ATTACHED = 0.
        let (dir, mut conn) = locked_down().await;
        let target = dir.path().join("copy.db");
        let vacuum = format!("VACUUM INTO '{}'", target.display());
        let error = sqlx::query(AssertSqlSafe(vacuum)).execute(&mut conn).await.unwrap_err();
        assert!(
            error.to_string().contains("not authorized") || error.to_string().contains("authorization denied"),
            "{error}"
        );
        assert!(!target.exists());
        let attach = format!("ATTACH '{}' AS x", dir.path().join("app.db").display());
        assert!(sqlx::query(AssertSqlSafe(attach)).execute(&mut conn).await.is_err());
    }

    #[tokio::test]
    async fn values_over_the_cap_are_not_built() {
        let (_dir, mut conn) = locked_down().await;
        {
            let mut handle = conn.lock_handle().await.unwrap();
            // SAFETY: the handle is locked.
            unsafe { cap_values(handle.as_raw_handle().as_ptr(), 1000) };
        }
        let error = sqlx::query("SELECT randomblob(1001)")
            .fetch_one(&mut conn)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("too big"), "{error}");
        let error = sqlx::query("SELECT hex(randomblob(600))")
            .fetch_one(&mut conn)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("too big"), "{error}");
        // printf() stops at the cap and answers NULL.
        let row = sqlx::query("SELECT printf('%.*c', 5000, 'x')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(sqlx::Row::get::<Option<String>, _>(&row, 0), None);
        let row = sqlx::query("SELECT zeroblob(1000)").fetch_one(&mut conn).await.unwrap();
        assert_eq!(sqlx::Row::get::<Vec<u8>, _>(&row, 0).len(), 1000);
    }
}
