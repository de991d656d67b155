-- The demo database: the seed application's tables, read by the `catalog`
-- and `critical-keys` plugins through the host's SQL capability.
--
-- One file for both SQLite and PostgreSQL: only types and syntax the two
-- share (BIGINT, INTEGER, TEXT, BOOLEAN, TIMESTAMP, IF NOT EXISTS). The
-- host runs it statement by statement, splitting on a semicolon at the end
-- of a line, so no statement contains one anywhere else. Running it again
-- is harmless. Fill the tables with seed.sql.
--
-- How the types come back through the host's `query`:
--   BOOLEAN    PostgreSQL: boolean.  SQLite: int 0 or 1 (no boolean type).
--   TIMESTAMP  PostgreSQL: text, RFC 3339.  SQLite: the stored text,
--              e.g. '2024-03-09 16:56:32'.
--   BIGINT, INTEGER: int.  TEXT: text.
-- Prices are integer cents, so nothing needs NUMERIC.
--
-- The host owns its own tables (cache, jobs): they are not created here.

-- Categories form a two-level tree: roots have no parent_id. Menus list
-- siblings by position, then name.
CREATE TABLE IF NOT EXISTS categories (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    parent_id BIGINT NULL REFERENCES categories (id),
    position INTEGER NOT NULL DEFAULT 0,
    active BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE INDEX IF NOT EXISTS index_categories_on_parent_id ON categories (parent_id);

CREATE TABLE IF NOT EXISTS products (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    price_cents INTEGER NOT NULL,
    category_id BIGINT NOT NULL REFERENCES categories (id),
    featured BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE INDEX IF NOT EXISTS index_products_on_category_id ON products (category_id);
CREATE INDEX IF NOT EXISTS index_products_on_featured ON products (featured);

-- preferences: a JSON document stored as text, e.g.
-- {"theme":"dark","language":"fr","newsletter":true}
CREATE TABLE IF NOT EXISTS users (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    preferences TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);
