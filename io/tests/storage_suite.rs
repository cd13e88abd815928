//! openraft's own storage test suite, run against the fjall-backed log store and the
//! state machine store.

use std::sync::Arc;

use lockmgr_core::Limits;
use lockmgr_io::{FjallDisk, LogStore, NoObserver, StateMachineStore, TypeConfig};
use openraft::{
    AsyncRuntime, StorageError, TokioRuntime,
    testing::log::{StoreBuilder, Suite},
};

struct FjallBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore<NoObserver>, tempfile::TempDir>
    for FjallBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (tempfile::TempDir, LogStore, StateMachineStore<NoObserver>),
        StorageError<TypeConfig>,
    > {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let disk = Arc::new(FjallDisk::open(dir.path()).expect("fjall opens"));
        let log = LogStore::new(disk.clone());
        let machine = StateMachineStore::open(disk, Limits::default(), NoObserver)
            .expect("the state machine opens");
        Ok((dir, log, machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_fjall() {
    TokioRuntime::run(async {
        Suite::test_all(FjallBuilder).await.expect("the storage suite passes");
    });
}
