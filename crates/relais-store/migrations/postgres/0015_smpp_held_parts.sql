-- Parts of concatenated submits to Relais's SMPP server, waiting for the rest of their
-- message. The ESME was told each part was accepted, so they outlive a restart; `key` names
-- the message (ESME, addresses, reference, part count), `part_id` is the id the part was
-- answered with.
CREATE TABLE smpp_held_parts (
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    total BIGINT NOT NULL,
    text TEXT NOT NULL,
    part_id TEXT NOT NULL,
    held_at BIGINT NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE INDEX smpp_held_parts_age ON smpp_held_parts(held_at);
