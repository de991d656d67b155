//! `preheat demo`: creates the demo application database (schema + deterministic
//! seed data from `config/demo/`) in SQLite or PostgreSQL.

use crate::db::{Db, DbOptions};
use anyhow::{Context, Result};
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

const SCHEMA: &str = include_str!("../../../config/demo/schema.sql");
const SEED: &str = include_str!("../../../config/demo/seed.sql");

/// Arguments of `preheat demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo database: `sqlite://path.db` (created) or `postgres://…`.
    #[arg(long, default_value = "sqlite://target/demo/app.db")]
    database: String,
}

/// Splits a SQL script into statements: a `;` at the end of a line ends one.
/// Comment lines (`--`) are dropped.
pub fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            out.push(current.trim().trim_end_matches(';').to_string());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// Creates (or refills) the demo database.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    if let Some(path) = args.database.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let options = DbOptions {
        read_only: false,
        create_if_missing: true,
        max_connections: 1,
        connect_timeout: Duration::from_secs(5),
    };
    let shown = crate::support::redact_url(&args.database);
    let db = Db::connect(&args.database, options)
        .await
        .with_context(|| format!("opening the demo database {shown}"))?;
    for statement in statements(SCHEMA).iter().chain(&statements(SEED)) {
        db.execute(statement)
            .await
            .with_context(|| format!("demo SQL failed on {shown}:\n{statement}"))?;
    }
    let counts = db
        .fetch_text(
            "SELECT CAST((SELECT count(*) FROM categories) AS TEXT), CAST((SELECT count(*) FROM products) AS TEXT), CAST((SELECT count(*) FROM users) AS TEXT)",
            vec![],
        )
        .await?;
    let c = |i: usize| counts[0][i].clone().unwrap_or_default();
    println!(
        "demo database ready at {shown}: {} categories, {} products, {} users",
        c(0),
        c(1),
        c(2)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements_at_line_end_semicolons() {
        let s = statements("-- comment\nCREATE TABLE a (x TEXT);\n\nINSERT INTO a\nVALUES ('x');\n");
        assert_eq!(s, vec!["CREATE TABLE a (x TEXT)", "INSERT INTO a\nVALUES ('x')"]);
        assert!(statements(SCHEMA).len() >= 3);
        assert!(statements(SEED).len() >= 3);
    }
}
