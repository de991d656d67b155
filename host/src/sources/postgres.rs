//! The PostgreSQL side of a source: the role check at connect, and the reset
//! of session state a plugin could leave behind on a connection.
//!
//! What keeps a PostgreSQL query read-only and alone:
//! - every query runs in `BEGIN READ ONLY`, rolled back; its first statement
//!   (`set_config('statement_timeout', …, true)`) takes a snapshot, so a later
//!   `SET TRANSACTION READ WRITE` is refused ("must be set before any query");
//! - sqlx sends every query with the extended protocol, which carries exactly
//!   one statement (`SELECT 1; SELECT 2` is refused by the server);
//! - TEMP tables, sequences and every write are refused in a read-only
//!   transaction, and `set_config(…, false)` / `SET` are undone by the rollback;
//! - what survives a rollback (named `PREPARE`d statements, session advisory
//!   locks, WITH HOLD cursors, LISTEN, a changed role) is looked for when the
//!   connection goes back to the pool, and such a connection is closed
//!   ([`is_clean`]);
//! - server-side file and program access (`COPY … TO PROGRAM`, `pg_read_file`,
//!   `lo_import`) needs a privileged role, which [`check_role`] refuses.
//!
//! One row of a result is one `DataRow` message, which sqlx reads whole before
//! the byte cap sees it: what bounds it is PostgreSQL itself (1 GB per value,
//! and the server builds a row message in one buffer of at most 1 GB). Keep
//! large columns out of sources, or bound them in a view (`substr`, `left`).

use anyhow::{bail, Result};
use sqlx::{PgConnection, Row};

/// Predefined roles that reach the server's files or programs.
const FILE_ROLES: [&str; 3] = [
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
];

/// Refuses a connection whose role is a superuser or a member of a superuser
/// role or of [`FILE_ROLES`] (directly or not), unless `allow` is set; the
/// error shows the SQL that creates a read-only role.
pub(super) async fn check_role(conn: &mut PgConnection, source: &str, address: &str, allow: bool) -> Result<()> {
    let rows = sqlx::query(
        "SELECT current_user::text, current_database()::text, r.rolname::text, r.rolsuper \
         FROM pg_roles r \
         WHERE (r.rolsuper OR r.rolname = ANY($1)) AND pg_has_role(current_user, r.oid, 'MEMBER') \
         ORDER BY r.rolname",
    )
    .bind(FILE_ROLES)
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    if allow {
        tracing::warn!(
            source,
            "the source's role is privileged; allowed by allow_privileged_role = true"
        );
        return Ok(());
    }
    let role: String = first.try_get(0)?;
    let database: String = first.try_get(1)?;
    let mut privileges = Vec::new();
    for row in &rows {
        let name: String = row.try_get(2)?;
        let superuser: bool = row.try_get(3)?;
        if superuser && name == role {
            // A superuser is a member of every role: that says it all.
            privileges = vec!["a superuser".to_string()];
            break;
        }
        privileges.push(if superuser {
            format!("a member of the superuser role `{name}`")
        } else {
            format!("a member of `{name}`")
        });
    }
    bail!(
        "source `{source}` ({address}) connects as role `{role}`, which is {}: through it a plugin could run programs and read or write the server's files (COPY … TO PROGRAM, pg_read_file, lo_import), even in a READ ONLY transaction. \
         Connect as a read-only role instead; as the owner of the tables, run: \
         CREATE ROLE preheat_reader LOGIN PASSWORD 'choose-one'; \
         GRANT CONNECT ON DATABASE \"{database}\" TO preheat_reader; \
         GRANT USAGE ON SCHEMA public TO preheat_reader; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO preheat_reader; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO preheat_reader; \
         then use url = \"postgres://preheat_reader:…@host/{database}\" in [sources.{source}]. \
         To accept the risk instead, set allow_privileged_role = true in [sources.{source}]",
        privileges.join(", ")
    )
}

/// Whether a connection back from a query carries no session state that
/// survived its rollback; the pool closes one that does (`after_release`).
pub(super) async fn is_clean(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT NOT (\
            EXISTS (SELECT 1 FROM pg_prepared_statements WHERE from_sql) \
            OR EXISTS (SELECT 1 FROM pg_cursors WHERE is_holdable) \
            OR EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory') \
            OR EXISTS (SELECT 1 FROM pg_listening_channels()) \
            OR current_user <> session_user)",
    )
    .fetch_one(conn)
    .await
}
