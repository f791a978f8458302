//! The storage conformance suite on SQLite.

use relais_store::{SqliteStore, Store};
use std::sync::Arc;

struct Fixture {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn finish(self) {}
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("relais.db"))
        .await
        .expect("open sqlite");
    Fixture {
        store: Arc::new(store),
        _dir: dir,
    }
}

relais_store::conformance_suite!(fresh);
