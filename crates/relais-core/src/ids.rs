//! Identifiers: UUIDv7 text, time-ordered so that ordering by id is ordering by creation.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
