-- One row that `check_writable` rewrites: a write that commits proves the store takes writes.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    writes BIGINT NOT NULL
);
