-- Sample schema for `pamwire demo` on MariaDB/MySQL: the same tiny shop as the
-- PostgreSQL demo (customers, products, orders). Deterministic: no RAND().

CREATE TABLE customers (
    id         INT AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    email      VARCHAR(200) NOT NULL UNIQUE,
    country    CHAR(2)      NOT NULL,
    created_at DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE products (
    id    INT AUTO_INCREMENT PRIMARY KEY,
    sku   VARCHAR(20)    NOT NULL UNIQUE,
    name  VARCHAR(100)   NOT NULL,
    price DECIMAL(10, 2) NOT NULL CHECK (price >= 0)
);

CREATE TABLE orders (
    id          INT AUTO_INCREMENT PRIMARY KEY,
    customer_id INT            NOT NULL,
    product_id  INT,
    amount      DECIMAL(10, 2) NOT NULL CHECK (amount >= 0),
    status      VARCHAR(20)    NOT NULL
        CHECK (status IN ('pending', 'paid', 'shipped', 'refunded', 'cancelled')),
    created_at  DATETIME       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY orders_customer_id_idx (customer_id),
    FOREIGN KEY (customer_id) REFERENCES customers (id),
    FOREIGN KEY (product_id) REFERENCES products (id)
);

-- 24 customers: names combined by position so every row differs.
INSERT INTO customers (name, email, country, created_at)
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 24)
SELECT
    CONCAT(ELT(1 + (i - 1) % 8, 'Ada', 'Bruno', 'Chiara', 'Dmitri', 'Elif', 'Farah',
               'Goran', 'Hana'),
           ' ',
           ELT(1 + (i - 1) % 6, 'Lindqvist', 'Okafor', 'Moreau', 'Tanaka', 'Novak',
               'Silva')),
    LOWER(CONCAT(ELT(1 + (i - 1) % 8, 'Ada', 'Bruno', 'Chiara', 'Dmitri', 'Elif',
                     'Farah', 'Goran', 'Hana'),
                 '.',
                 ELT(1 + (i - 1) % 6, 'Lindqvist', 'Okafor', 'Moreau', 'Tanaka',
                     'Novak', 'Silva'),
                 i, '@example.com')),
    ELT(1 + (i - 1) % 7, 'DE', 'FR', 'NL', 'SE', 'PT', 'JP', 'NG'),
    TIMESTAMP '2024-01-01 09:00:00' + INTERVAL (i * 123) HOUR
FROM n;

INSERT INTO products (sku, name, price) VALUES
    ('KB-101', 'Mechanical keyboard', 89.00),
    ('MS-202', 'Wireless mouse', 24.50),
    ('MN-303', '27-inch monitor', 279.99),
    ('HS-404', 'Noise-cancelling headset', 149.00),
    ('DK-505', 'USB-C dock', 119.90),
    ('CB-606', 'Braided cable, 2 m', 9.99);

-- 60 orders spread over the customers and products.
INSERT INTO orders (customer_id, product_id, amount, status, created_at)
WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
SELECT
    1 + (i * 7) % 24,
    p.id,
    p.price * (1 + i % 3),
    ELT(1 + i % 8, 'paid', 'shipped', 'shipped', 'pending', 'paid', 'refunded',
        'shipped', 'cancelled'),
    TIMESTAMP '2024-03-01 12:00:00' + INTERVAL (i * 53) HOUR
FROM n
JOIN products AS p ON p.id = 1 + (i * 5) % 6;
