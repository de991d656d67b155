-- The demo data for schema.sql: deterministic (no random()), the same rows
-- on SQLite and PostgreSQL, generated with WITH RECURSIVE counters and
-- modular arithmetic. Running it again replaces the data.
--
--   categories   60: 10 roots (ids 1-10), 5 subcategories each (ids 11-60).
--                Inactive: root 10 "Grocery" with its 5 subcategories, and
--                subcategories 17, 34 and 51 (9 in all, 51 active).
--   products   3000: 50 per category (category_id = 1 + (n * 7) % 60).
--                Inactive: (n + n / 60) % 20 = 7 (150, 5%, 2 or 3 in every
--                category). Featured: n % 97 = 0 (30: product 873 is
--                inactive and 5 more are in inactive categories, so 24
--                can show). Prices in cents, ending in 99.
--   users      2000: inactive when n % 10 = 3 (200, 10%), preferences as a
--                JSON document in text.
--
-- Timestamps come from seed_clock, a helper table of 48 literal timestamps
-- (two a month over 2023-2024) that is dropped at the end: PostgreSQL will
-- not store a computed text value in a TIMESTAMP column without a cast, and
-- CAST(... AS TIMESTAMP) in SQLite turns '2024-01-08 ...' into 2024.

DELETE FROM products;
DELETE FROM categories;
DELETE FROM users;

CREATE TABLE IF NOT EXISTS seed_clock (
    n INTEGER PRIMARY KEY,
    ts TIMESTAMP NOT NULL
);

DELETE FROM seed_clock;

INSERT INTO seed_clock (n, ts) VALUES
    (0, '2023-01-08 08:00:00'),
    (1, '2023-01-22 13:17:29'),
    (2, '2023-02-04 18:34:58'),
    (3, '2023-02-17 12:51:27'),
    (4, '2023-03-09 17:08:56'),
    (5, '2023-03-24 11:25:25'),
    (6, '2023-04-05 16:42:54'),
    (7, '2023-04-19 10:59:23'),
    (8, '2023-05-10 15:16:52'),
    (9, '2023-05-26 09:33:21'),
    (10, '2023-06-06 14:50:50'),
    (11, '2023-06-21 08:07:19'),
    (12, '2023-07-11 13:24:48'),
    (13, '2023-07-16 18:41:17'),
    (14, '2023-08-07 12:58:46'),
    (15, '2023-08-23 17:15:15'),
    (16, '2023-09-03 11:32:44'),
    (17, '2023-09-18 16:49:13'),
    (18, '2023-10-08 10:06:42'),
    (19, '2023-10-25 15:23:11'),
    (20, '2023-11-04 09:40:40'),
    (21, '2023-11-20 14:57:09'),
    (22, '2023-12-09 08:14:38'),
    (23, '2023-12-15 13:31:07'),
    (24, '2024-01-08 18:48:36'),
    (25, '2024-01-22 12:05:05'),
    (26, '2024-02-04 17:22:34'),
    (27, '2024-02-17 11:39:03'),
    (28, '2024-03-09 16:56:32'),
    (29, '2024-03-24 10:13:01'),
    (30, '2024-04-05 15:30:30'),
    (31, '2024-04-19 09:47:59'),
    (32, '2024-05-10 14:04:28'),
    (33, '2024-05-26 08:21:57'),
    (34, '2024-06-06 13:38:26'),
    (35, '2024-06-21 18:55:55'),
    (36, '2024-07-11 12:12:24'),
    (37, '2024-07-16 17:29:53'),
    (38, '2024-08-07 11:46:22'),
    (39, '2024-08-23 16:03:51'),
    (40, '2024-09-03 10:20:20'),
    (41, '2024-09-18 15:37:49'),
    (42, '2024-10-08 09:54:18'),
    (43, '2024-10-25 14:11:47'),
    (44, '2024-11-04 08:28:16'),
    (45, '2024-11-20 13:45:45'),
    (46, '2024-12-09 18:02:14'),
    (47, '2024-12-15 12:19:43');

-- Root categories 1-10. Positions are a permutation of 1-10 unrelated to the
-- ids ((n * 3) % 10 + 1), so menus ordered by position differ from id order.
WITH RECURSIVE seq (n) AS (
    SELECT 1
    UNION ALL
    SELECT n + 1 FROM seq WHERE n < 10
)
INSERT INTO categories (id, name, slug, parent_id, position, active)
SELECT
    n,
    CASE n
        WHEN 1 THEN 'Electronics'
        WHEN 2 THEN 'Home & Kitchen'
        WHEN 3 THEN 'Books'
        WHEN 4 THEN 'Fashion'
        WHEN 5 THEN 'Sports & Outdoors'
        WHEN 6 THEN 'Toys & Games'
        WHEN 7 THEN 'Beauty'
        WHEN 8 THEN 'Garden'
        WHEN 9 THEN 'Automotive'
        ELSE 'Grocery'
    END,
    CASE n
        WHEN 1 THEN 'electronics'
        WHEN 2 THEN 'home-kitchen'
        WHEN 3 THEN 'books'
        WHEN 4 THEN 'fashion'
        WHEN 5 THEN 'sports-outdoors'
        WHEN 6 THEN 'toys-games'
        WHEN 7 THEN 'beauty'
        WHEN 8 THEN 'garden'
        WHEN 9 THEN 'automotive'
        ELSE 'grocery'
    END,
    NULL,
    (n * 3) % 10 + 1,
    n <> 10
FROM seq;

-- Subcategories 11-60: five per root (k = 0..4 under root 1 + n / 5), named
-- after their root. Positions 5, 4, 3, 1, 1: reversed against the ids, with a
-- tie ("Deals", "New Arrivals") broken by name. A subcategory of an inactive
-- root is inactive too.
WITH RECURSIVE seq (n) AS (
    SELECT 0
    UNION ALL
    SELECT n + 1 FROM seq WHERE n < 49
)
INSERT INTO categories (id, name, slug, parent_id, position, active)
SELECT
    11 + s.n,
    r.name || ' ' || CASE s.n % 5
        WHEN 0 THEN 'Essentials'
        WHEN 1 THEN 'Accessories'
        WHEN 2 THEN 'Premium'
        WHEN 3 THEN 'New Arrivals'
        ELSE 'Deals'
    END,
    r.slug || '-' || CASE s.n % 5
        WHEN 0 THEN 'essentials'
        WHEN 1 THEN 'accessories'
        WHEN 2 THEN 'premium'
        WHEN 3 THEN 'new-arrivals'
        ELSE 'deals'
    END,
    r.id,
    CASE s.n % 5
        WHEN 0 THEN 5
        WHEN 1 THEN 4
        WHEN 2 THEN 3
        ELSE 1
    END,
    r.id <> 10 AND (11 + s.n) % 17 <> 0
FROM seq s
JOIN categories r ON r.id = 1 + s.n / 5;

-- Products 1-3000: "<Adjective> <Noun> <n>", spread evenly over all 60
-- categories. created_at walks through seed_clock, updated_at is 0-7 clock
-- steps later.
WITH RECURSIVE seq (n) AS (
    SELECT 1
    UNION ALL
    SELECT n + 1 FROM seq WHERE n < 3000
),
named (n, label) AS (
    SELECT
        n,
        CASE n % 10
            WHEN 0 THEN 'Classic'
            WHEN 1 THEN 'Compact'
            WHEN 2 THEN 'Deluxe'
            WHEN 3 THEN 'Eco'
            WHEN 4 THEN 'Family'
            WHEN 5 THEN 'Handmade'
            WHEN 6 THEN 'Pro'
            WHEN 7 THEN 'Smart'
            WHEN 8 THEN 'Ultra'
            ELSE 'Vintage'
        END || ' ' || CASE (n / 10) % 12
            WHEN 0 THEN 'Backpack'
            WHEN 1 THEN 'Blender'
            WHEN 2 THEN 'Candle'
            WHEN 3 THEN 'Headphones'
            WHEN 4 THEN 'Jacket'
            WHEN 5 THEN 'Kettle'
            WHEN 6 THEN 'Lamp'
            WHEN 7 THEN 'Notebook'
            WHEN 8 THEN 'Puzzle'
            WHEN 9 THEN 'Sneakers'
            WHEN 10 THEN 'Speaker'
            ELSE 'Watch'
        END
    FROM seq
)
INSERT INTO products
    (id, name, slug, price_cents, category_id, featured, active, created_at, updated_at)
SELECT
    p.n,
    p.label || ' ' || p.n,
    LOWER(REPLACE(p.label, ' ', '-')) || '-' || p.n,
    ((p.n * 37) % 500 + 5) * 100 - 1,
    1 + (p.n * 7) % 60,
    p.n % 97 = 0,
    (p.n + p.n / 60) % 20 <> 7,
    created.ts,
    updated.ts
FROM named p
JOIN seed_clock created ON created.n = (p.n * 7) % 40
JOIN seed_clock updated ON updated.n = (p.n * 7) % 40 + p.n % 8;

-- Users 1-2000: "<First> <Last>", a unique e-mail address from the name and
-- the id, and preferences cycling through themes, languages and newsletter.
WITH RECURSIVE seq (n) AS (
    SELECT 1
    UNION ALL
    SELECT n + 1 FROM seq WHERE n < 2000
),
named (n, first_name, last_name) AS (
    SELECT
        n,
        CASE n % 12
            WHEN 0 THEN 'Ada'
            WHEN 1 THEN 'Grace'
            WHEN 2 THEN 'Alan'
            WHEN 3 THEN 'Linus'
            WHEN 4 THEN 'Barbara'
            WHEN 5 THEN 'Ken'
            WHEN 6 THEN 'Margaret'
            WHEN 7 THEN 'Dennis'
            WHEN 8 THEN 'Frances'
            WHEN 9 THEN 'John'
            WHEN 10 THEN 'Radia'
            ELSE 'Edsger'
        END,
        CASE (n / 12) % 10
            WHEN 0 THEN 'Lovelace'
            WHEN 1 THEN 'Hopper'
            WHEN 2 THEN 'Turing'
            WHEN 3 THEN 'Torvalds'
            WHEN 4 THEN 'Liskov'
            WHEN 5 THEN 'Thompson'
            WHEN 6 THEN 'Hamilton'
            WHEN 7 THEN 'Ritchie'
            WHEN 8 THEN 'Allen'
            ELSE 'Dijkstra'
        END
    FROM seq
)
INSERT INTO users (id, name, email, active, preferences, created_at)
SELECT
    u.n,
    u.first_name || ' ' || u.last_name,
    LOWER(u.first_name) || '.' || LOWER(u.last_name) || u.n || '@example.com',
    u.n % 10 <> 3,
    '{"theme":"' || CASE u.n % 3
        WHEN 0 THEN 'light'
        WHEN 1 THEN 'dark'
        ELSE 'system'
    END || '","language":"' || CASE (u.n / 3) % 3
        WHEN 0 THEN 'en'
        WHEN 1 THEN 'fr'
        ELSE 'de'
    END || '","newsletter":' || CASE WHEN u.n % 2 = 0 THEN 'true' ELSE 'false' END || '}',
    created.ts
FROM named u
JOIN seed_clock created ON created.n = (u.n * 11) % 48;

DROP TABLE seed_clock;
