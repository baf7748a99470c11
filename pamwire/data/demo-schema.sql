-- Sample schema for `pamwire demo`: a tiny shop with made-up customers, products
-- and orders. Load it into an empty database; it is deterministic (no random()).

CREATE TABLE customers (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    email      text        NOT NULL UNIQUE,
    country    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku   text          NOT NULL UNIQUE,
    name  text          NOT NULL,
    price numeric(10, 2) NOT NULL CHECK (price >= 0)
);

CREATE TABLE orders (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer        NOT NULL REFERENCES customers (id),
    product_id  integer        REFERENCES products (id),
    amount      numeric(10, 2) NOT NULL CHECK (amount >= 0),
    status      text           NOT NULL
        CHECK (status IN ('pending', 'paid', 'shipped', 'refunded', 'cancelled')),
    created_at  timestamptz    NOT NULL DEFAULT now()
);

CREATE INDEX orders_customer_id_idx ON orders (customer_id);

-- 24 customers: first and last names are combined by position so every row
-- differs; email addresses use the reserved example.com domain.
INSERT INTO customers (name, email, country, created_at)
SELECT
    first_names[1 + (n - 1) % 8] || ' ' || last_names[1 + (n - 1) % 6],
    lower(first_names[1 + (n - 1) % 8] || '.' || last_names[1 + (n - 1) % 6])
        || n || '@example.com',
    countries[1 + (n - 1) % 7],
    timestamptz '2024-01-01 09:00:00+00' + (n * interval '5 days 3 hours')
FROM generate_series(1, 24) AS n,
    LATERAL (SELECT
        ARRAY['Ada', 'Bruno', 'Chiara', 'Dmitri', 'Elif', 'Farah', 'Goran', 'Hana']
            AS first_names,
        ARRAY['Lindqvist', 'Okafor', 'Moreau', 'Tanaka', 'Novak', 'Silva']
            AS last_names,
        ARRAY['DE', 'FR', 'NL', 'SE', 'PT', 'JP', 'NG'] AS countries
    ) AS pools;

INSERT INTO products (sku, name, price) VALUES
    ('KB-101', 'Mechanical keyboard', 89.00),
    ('MS-202', 'Wireless mouse', 24.50),
    ('MN-303', '27-inch monitor', 279.99),
    ('HS-404', 'Noise-cancelling headset', 149.00),
    ('DK-505', 'USB-C dock', 119.90),
    ('CB-606', 'Braided cable, 2 m', 9.99);

-- 60 orders spread over the customers and products; the quantity (1-3) times
-- the product price gives the amount.
INSERT INTO orders (customer_id, product_id, amount, status, created_at)
SELECT
    1 + (n * 7) % 24,
    p.id,
    p.price * (1 + n % 3),
    (ARRAY['paid', 'shipped', 'shipped', 'pending', 'paid', 'refunded',
           'shipped', 'cancelled'])[1 + n % 8],
    timestamptz '2024-03-01 12:00:00+00' + (n * interval '2 days 5 hours')
FROM generate_series(1, 60) AS n
JOIN products AS p ON p.id = 1 + (n * 5) % 6;
