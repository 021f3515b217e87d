//! A store shaped like a networked one (etcd): no call answers at once.
//! Every read, scan, commit and flush is a future that yields to the
//! runtime (and now and then sleeps a moment) before the memory store under
//! it answers. The compute core's checks never wait themselves: an attempt
//! that needs an answer notes it, the runner awaits it and runs the attempt
//! again. Running the store suite and the several-cores property test on
//! this store drives every operation down that path, the one an etcd
//! backend will take.

use ec2_gateway::store::{
    Committed, Entry, Expectation, MemoryStore, Store, StoreCall, VersionedValue, WriteBatch,
};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct RemoteShaped {
    inner: MemoryStore,
    /// Calls answered through a future.
    waited: AtomicU64,
}

impl RemoteShaped {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many calls were answered only after a wait.
    pub fn waited_calls(&self) -> u64 {
        self.waited.load(Ordering::SeqCst)
    }

    /// A network's round trip: a yield, and one call in eight waits 1 ms.
    async fn round_trip(&self) {
        let n = self.waited.fetch_add(1, Ordering::SeqCst);
        if n % 8 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

impl Store for RemoteShaped {
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        StoreCall::waiting(async move {
            self.round_trip().await;
            self.inner.get_versioned(tree, key).await
        })
    }

    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        writes: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        StoreCall::waiting(async move {
            self.round_trip().await;
            self.inner.commit(expectations, writes).await
        })
    }

    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>> {
        StoreCall::waiting(async move {
            self.round_trip().await;
            self.inner.scan(tree, prefix, after, limit).await
        })
    }

    fn flush(&self) -> StoreCall<'_, ()> {
        StoreCall::waiting(async move {
            self.round_trip().await;
            self.inner.flush().await
        })
    }
}
