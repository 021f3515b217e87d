//! The three faults of the lock-and-cache core, each as a test.
//!
//! 1. A write the store refuses must leave nothing behind: 0.1.0 updated
//!    its instance cache before the write and rolled back only the hosts,
//!    so a launch or a stop whose write failed still showed.
//! 2. `DeleteSecurityGroup` checked which instances used the group before
//!    taking its lock: a launch in the group between the check and the
//!    delete left a live instance in a deleted group.
//! 3. One request held locks other accounts needed: a launch whose write
//!    was slow stopped every other account's launches.
//!
//! The store is wrapped so that the tests can make a commit fail, or hold a
//! chosen commit until they release it, and so race requests
//! deterministically.

mod common;

use common::{test_config, ADMIN_ACCOUNT, USER_ACCOUNT};
use ec2_gateway::clock::OffsetClock;
use ec2_gateway::compute::instances::{InstanceState, LaunchRequest, StateAction};
use ec2_gateway::compute::security_groups::GroupSelector;
use ec2_gateway::compute::Compute;
use ec2_gateway::config::StorageBackend;
use ec2_gateway::store::{
    Committed, Entry, Expectation, MemoryStore, SledStore, Store, StoreCall, StoreError,
    StoreHandle, VersionedValue, WriteBatch, WriteOp,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

/// Picks the commits a [`FaultyStore`] holds.
type Matcher = Box<dyn Fn(&WriteBatch) -> bool + Send + Sync>;

/// A commit being held: the test hears when it arrives, and lets it go.
struct Hold {
    matches: Matcher,
    arrived: mpsc::Sender<()>,
    release: Mutex<mpsc::Receiver<()>>,
}

/// A store (memory or sled) that fails commits while `failing`, and holds
/// the first commit a [`Hold`] matches until the test releases it.
struct FaultyStore {
    inner: Box<dyn Store>,
    failing: AtomicBool,
    hold: Mutex<Option<Arc<Hold>>>,
    /// Whether the gateway over it batches commits.
    batched: bool,
    /// Flushes asked of it.
    flushes: AtomicUsize,
    /// The sled folder, removed with the store.
    _dir: tempfile::TempDir,
}

impl FaultyStore {
    fn over(setup: Setup) -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let inner: Box<dyn Store> = match setup.backend {
            StorageBackend::Memory => Box::new(MemoryStore::new()),
            StorageBackend::Sled => {
                Box::new(SledStore::open(&dir.path().join("db"), 8 << 20).unwrap())
            }
            StorageBackend::Etcd => unreachable!("faults are injected over local stores"),
        };
        Arc::new(Self {
            inner,
            failing: AtomicBool::new(false),
            hold: Mutex::new(None),
            batched: setup.batched,
            flushes: AtomicUsize::new(0),
            _dir: dir,
        })
    }

    /// Holds the next commit `matches` accepts; returns (arrived, release).
    fn hold_next(&self, matches: Matcher) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (arrived_tx, arrived_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.hold.lock().unwrap() = Some(Arc::new(Hold {
            matches,
            arrived: arrived_tx,
            release: Mutex::new(release_rx),
        }));
        (arrived_rx, release_tx)
    }
}

impl Store for FaultyStore {
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        self.inner.get_versioned(tree, key)
    }

    /// Fails when told to; holds (blocking, as a slow disk would) the
    /// commit a test waits for.
    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        writes: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        if self.failing.load(Ordering::SeqCst) {
            return StoreCall::ready(Err(StoreError("injected write failure".into())));
        }
        let hold = {
            let mut slot = self.hold.lock().unwrap();
            match slot.as_ref() {
                Some(hold) if (hold.matches)(writes) => slot.take(),
                _ => None,
            }
        };
        if let Some(hold) = hold {
            let _ = hold.arrived.send(());
            // Never forever: a test that fails must not hang the suite.
            let _ = hold
                .release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20));
        }
        self.inner.commit(expectations, writes)
    }

    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>> {
        self.inner.scan(tree, prefix, after, limit)
    }

    fn flush(&self) -> StoreCall<'_, ()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush()
    }

    fn answers_at_once(&self) -> bool {
        self.inner.answers_at_once()
    }
}

fn writes_key(batch: &WriteBatch, tree: &str, prefix: &str, delete: bool) -> bool {
    batch.ops.iter().any(|op| match op {
        WriteOp::Delete { tree: t, key } => {
            delete && *t == tree && key.starts_with(prefix.as_bytes())
        }
        WriteOp::Put { tree: t, key, .. } => {
            !delete && *t == tree && key.starts_with(prefix.as_bytes())
        }
    })
}

async fn open(store: Arc<FaultyStore>) -> (Arc<Compute>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), StorageBackend::Memory);
    let compute = Compute::open(
        &config,
        Arc::new(StoreHandle::new(store.clone()).batching_if(store.batched)),
        Arc::new(OffsetClock::new()),
    )
    .await
    .unwrap();
    for account in [USER_ACCOUNT, ADMIN_ACCOUNT] {
        compute.provision_defaults(account).await.unwrap();
    }
    (Arc::new(compute), dir)
}

fn launch(groups: &[&str]) -> LaunchRequest {
    LaunchRequest {
        image_id: IMAGE.into(),
        instance_type: "t3.micro".into(),
        min_count: 1,
        max_count: 1,
        security_group_names: groups.iter().map(|g| g.to_string()).collect(),
        shutdown_behavior: "stop".into(),
        fingerprint: format!("{groups:?}"),
        ..LaunchRequest::default()
    }
}

/// Blocks (off the runtime's workers) until `arrived` hears.
async fn wait_for(arrived: mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || arrived.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the held commit arrived");
}

async fn a_refused_write_leaves_nothing_behind(setup: Setup) {
    let store = FaultyStore::over(setup);
    let (compute, _dir) = open(store.clone()).await;
    let first = compute
        .run_instances(USER_ACCOUNT, launch(&[]))
        .await
        .unwrap()
        .instances
        .remove(0);

    // Launch: refused by the store, so nothing was launched.
    store.failing.store(true, Ordering::SeqCst);
    let refused = compute.run_instances(USER_ACCOUNT, launch(&[])).await;
    store.failing.store(false, Ordering::SeqCst);
    assert!(refused.is_err(), "the launch reports the failed write");
    let listed = compute.instances(USER_ACCOUNT, &[], None).await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [first.id.as_str()],
        "only the instance whose write was applied is listed"
    );

    // State change: refused, so the instance is as it was.
    store.failing.store(true, Ordering::SeqCst);
    let refused = compute
        .change_state(
            USER_ACCOUNT,
            std::slice::from_ref(&first.id),
            StateAction::Stop,
            false,
        )
        .await;
    store.failing.store(false, Ordering::SeqCst);
    assert!(refused.is_err());
    let state = compute
        .instances(USER_ACCOUNT, std::slice::from_ref(&first.id), None)
        .await
        .unwrap()[0]
        .state;
    assert_eq!(state, InstanceState::Pending, "the stop did not happen");

    // The books still balance: stopping works, and every vCPU booked on
    // a host belongs to an instance that holds it.
    compute
        .change_state(
            USER_ACCOUNT,
            std::slice::from_ref(&first.id),
            StateAction::Stop,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        compute
            .instances(USER_ACCOUNT, std::slice::from_ref(&first.id), None)
            .await
            .unwrap()[0]
            .state,
        InstanceState::Stopping
    );
}

async fn a_refused_transition_leaves_the_instance_where_it_was(setup: Setup) {
    let store = FaultyStore::over(setup);
    let (compute, _dir) = open(store.clone()).await;
    let id = compute
        .run_instances(USER_ACCOUNT, launch(&[]))
        .await
        .unwrap()
        .instances
        .remove(0)
        .id;
    let state = |compute: &Arc<Compute>| {
        let ids = vec![id.clone()];
        let compute = compute.clone();
        async move { compute.instances(USER_ACCOUNT, &ids, None).await.unwrap()[0].state }
    };
    store.failing.store(true, Ordering::SeqCst);
    assert!(compute.advance_due(compute.clock().now()).await.is_err());
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(state(&compute).await, InstanceState::Pending);
    compute.advance_due(compute.clock().now()).await.unwrap();
    assert_eq!(state(&compute).await, InstanceState::Running);
    let booked: u32 = compute
        .services()
        .hosts()
        .await
        .unwrap()
        .iter()
        .map(|h| h.vcpus_used)
        .sum();
    assert_eq!(booked, 2, "one t3.micro booked once");
}

async fn a_group_cannot_be_deleted_under_a_launch_in_it(setup: Setup) {
    let store = FaultyStore::over(setup);
    let (compute, _dir) = open(store.clone()).await;
    compute
        .create_security_group(USER_ACCOUNT, "web", "web", None, Vec::new(), false)
        .await
        .unwrap();
    // Hold the delete's write until a launch in the group has answered.
    let (arrived, release) = store.hold_next(Box::new(|batch| {
        writes_key(batch, "security_groups", USER_ACCOUNT, true)
    }));
    let deleting = {
        let compute = compute.clone();
        tokio::spawn(async move {
            compute
                .delete_security_group(USER_ACCOUNT, &GroupSelector::Name("web".into()), false)
                .await
        })
    };
    wait_for(arrived).await;
    let launched = compute
        .run_instances(USER_ACCOUNT, launch(&["web"]))
        .await
        .expect("the group exists while its deletion is held")
        .instances
        .remove(0);
    release.send(()).unwrap();
    let deleted = deleting.await.unwrap();
    let group_left = compute
        .security_groups(USER_ACCOUNT)
        .await
        .unwrap()
        .into_iter()
        .any(|g| g.name == "web");
    assert!(
        group_left,
        "the group of a live instance ({}) was deleted",
        launched.id
    );
    assert_eq!(deleted.unwrap_err().code(), "DependencyViolation");
}

async fn a_slow_request_does_not_hold_up_other_accounts(setup: Setup) {
    let store = FaultyStore::over(setup);
    let (compute, _dir) = open(store.clone()).await;
    // Hold the user's launch in its write.
    let (arrived, release) = store.hold_next(Box::new(|batch| {
        writes_key(batch, "instances", USER_ACCOUNT, false)
    }));
    let slow = {
        let compute = compute.clone();
        tokio::spawn(async move { compute.run_instances(USER_ACCOUNT, launch(&[])).await })
    };
    wait_for(arrived).await;
    // Another account launches while the first launch is held; whether it
    // answered is read before the first one is let go.
    let (done_tx, done_rx) = mpsc::channel();
    let other = {
        let compute = compute.clone();
        tokio::spawn(async move {
            let answer = compute.run_instances(ADMIN_ACCOUNT, launch(&[])).await;
            let _ = done_tx.send(());
            answer
        })
    };
    let answered_while_held =
        tokio::task::spawn_blocking(move || done_rx.recv_timeout(Duration::from_secs(15)).is_ok())
            .await
            .unwrap();
    let _ = release.send(());
    assert!(
        answered_while_held,
        "another account's launch waited for the held one"
    );
    assert_eq!(other.await.unwrap().unwrap().instances.len(), 1);
    // And the held launch still completes, once, on fresh reads.
    assert_eq!(slow.await.unwrap().unwrap().instances.len(), 1);
    assert_eq!(
        compute
            .instances(USER_ACCOUNT, &[], None)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The store under a test, and whether its commits are batched (as on
/// etcd: `store::batch`).
#[derive(Clone, Copy)]
struct Setup {
    backend: StorageBackend,
    batched: bool,
}

/// Each fault test on memory and on sled, and on memory with batched
/// commits: a commit held there holds its whole batch, and must not hold
/// other accounts' requests for longer than `store::batch::SLOW_COMMIT`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Setup { backend: super::StorageBackend::Memory, batched: false }).await
                }
            )*
        }
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Setup { backend: super::StorageBackend::Sled, batched: false }).await
                }
            )*
        }
        mod memory_batched {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Setup { backend: super::StorageBackend::Memory, batched: true }).await
                }
            )*
        }
    };
}

on_both_backends!(
    a_refused_write_leaves_nothing_behind,
    a_refused_transition_leaves_the_instance_where_it_was,
    a_group_cannot_be_deleted_under_a_launch_in_it,
    a_slow_request_does_not_hold_up_other_accounts,
);

/// An answer that writes nothing but rests on a value it read (a retried
/// ClientToken) waits until that value is durable, even when the value's
/// commit was never noted by the handle: a batch its committer applied,
/// whose members had not woken yet, or had all gone away (their clients
/// hung up).
#[tokio::test]
async fn a_value_read_before_its_commit_was_noted_is_flushed_before_an_answer() {
    let store = FaultyStore::over(Setup {
        backend: StorageBackend::Sled,
        batched: true,
    });
    let handle = StoreHandle::new(store.clone()).batching_if(true);
    let mut writes = WriteBatch::new();
    writes.put("meta", b"token".to_vec(), b"launched".to_vec());
    // Applied behind the handle: nothing of it is noted.
    store.commit(&[], &writes).await.unwrap();
    let version = store
        .get_versioned("meta", b"token")
        .await
        .unwrap()
        .expect("the value was applied")
        .version;
    let before = store.flushes.load(Ordering::SeqCst);
    handle.durable_through(version).await.unwrap();
    assert_eq!(
        store.flushes.load(Ordering::SeqCst),
        before + 1,
        "the answer waited for a flush covering what it read"
    );
    handle.durable_through(version).await.unwrap();
    assert_eq!(
        store.flushes.load(Ordering::SeqCst),
        before + 1,
        "a value already durable needs no second flush"
    );
}
