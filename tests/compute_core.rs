//! The compute core driven directly: lifecycle under paused tokio time,
//! restart mid-transition, and a property test of host capacity.

mod common;

use common::*;
use ec2_gateway::clock::{Clock, OffsetClock, TokioClock};
use ec2_gateway::compute::instances::{InstanceState, LaunchRequest, StateAction};
use ec2_gateway::compute::Compute;
use ec2_gateway::config::{Config, StorageBackend};
use ec2_gateway::store::{MemoryStore, SledStore, Store, StoreHandle};
use std::sync::Arc;
use std::time::Duration;

fn launch(image: &str, instance_type: &str, count: u32, zone: Option<&str>) -> LaunchRequest {
    LaunchRequest {
        image_id: image.into(),
        instance_type: instance_type.into(),
        min_count: 1,
        max_count: count,
        availability_zone: zone.map(str::to_string),
        shutdown_behavior: "stop".into(),
        fingerprint: format!("{image}/{instance_type}/{count}/{zone:?}"),
        ..LaunchRequest::default()
    }
}

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn config_with_delays(dir: &std::path::Path, storage: StorageBackend) -> Config {
    let mut config = test_config(dir, storage);
    config.lifecycle.boot_delay_secs = 2;
    config.lifecycle.stop_delay_secs = 1;
    config.lifecycle.terminate_delay_secs = 1;
    config.lifecycle.terminated_retention_secs = 3600;
    config
}

async fn compute(config: &Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Compute> {
    Arc::new(
        Compute::open(config, Arc::new(StoreHandle::new(store)), clock)
            .await
            .unwrap(),
    )
}

async fn host_usage(compute: &Compute) -> u32 {
    compute
        .services()
        .hosts()
        .await
        .unwrap()
        .iter()
        .find(|h| h.host == "node-b1")
        .unwrap()
        .vcpus_used
}

async fn state_of(compute: &Compute, id: &str) -> InstanceState {
    compute
        .instances(USER_ACCOUNT, &[id.to_string()], None)
        .await
        .unwrap()[0]
        .state
}

/// A compute core on tokio's (paused) clock with its lifecycle driver and
/// simulated heartbeats running; both stop when it is dropped.
struct Running {
    compute: Arc<Compute>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(config: &Config) -> Self {
        let compute = compute(
            config,
            Arc::new(MemoryStore::new()),
            Arc::new(TokioClock::new()),
        )
        .await;
        let driver = tokio::spawn(ec2_gateway::compute::lifecycle::drive(compute.clone()));
        // Keep the simulated hosts alive while time jumps ahead.
        let beating = compute.clone();
        let beats = tokio::spawn(async move {
            loop {
                beating
                    .services()
                    .heartbeat_simulated(beating.clock().now())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        Self {
            compute,
            tasks: vec![driver, beats],
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_transition_happens_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(&config_with_delays(dir.path(), StorageBackend::Memory)).await;
    let compute = running.compute.clone();
    let reservation = compute
        .run_instances(
            USER_ACCOUNT,
            launch(IMAGE, "t3.micro", 1, Some("us-east-1b")),
        )
        .await
        .unwrap();
    let id = reservation.instances[0].id.clone();
    assert_eq!(reservation.instances[0].state, InstanceState::Pending);
    assert_eq!(reservation.instances[0].availability_zone, "us-east-1b");
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert_eq!(state_of(&compute, &id).await, InstanceState::Pending);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state_of(&compute, &id).await, InstanceState::Running);

    assert_eq!(host_usage(&compute).await, 2);
    compute
        .change_state(
            USER_ACCOUNT,
            std::slice::from_ref(&id),
            StateAction::Stop,
            false,
        )
        .await
        .unwrap();
    assert_eq!(state_of(&compute, &id).await, InstanceState::Stopping);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(state_of(&compute, &id).await, InstanceState::Stopped);
    assert_eq!(
        host_usage(&compute).await,
        0,
        "a stopped instance releases its capacity"
    );

    compute
        .change_state(
            USER_ACCOUNT,
            std::slice::from_ref(&id),
            StateAction::Start,
            false,
        )
        .await
        .unwrap();
    assert_eq!(state_of(&compute, &id).await, InstanceState::Pending);
    assert_eq!(host_usage(&compute).await, 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(state_of(&compute, &id).await, InstanceState::Running);

    compute
        .change_state(
            USER_ACCOUNT,
            std::slice::from_ref(&id),
            StateAction::Terminate,
            false,
        )
        .await
        .unwrap();
    assert_eq!(state_of(&compute, &id).await, InstanceState::ShuttingDown);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(state_of(&compute, &id).await, InstanceState::Terminated);
    assert_eq!(host_usage(&compute).await, 0);
    // Visible for the retention period, then purged.
    tokio::time::sleep(Duration::from_secs(3590)).await;
    assert_eq!(state_of(&compute, &id).await, InstanceState::Terminated);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        compute
            .instances(USER_ACCOUNT, std::slice::from_ref(&id), None)
            .await
            .unwrap_err()
            .code(),
        "InvalidInstanceID.NotFound"
    );
}

/// What the store holds, in bytes of keys and values, table by table.
async fn stored_bytes(store: &MemoryStore) -> std::collections::BTreeMap<String, usize> {
    let mut tables = std::collections::BTreeMap::new();
    for entry in store.snapshot().await.unwrap().entries {
        *tables.entry(entry.tree).or_default() += entry.key.len() + entry.value.len();
    }
    tables
}

/// A terminated instance keeps what DescribeInstances shows of it while it
/// is retained (and its ClientToken, for retries), nothing else: at most
/// 2 KiB of records, however much user data, interfaces and volumes it had
/// while it ran.
#[tokio::test]
async fn a_terminated_instance_weighs_at_most_two_kib() {
    const INSTANCES: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), StorageBackend::Memory);
    let clock = Arc::new(OffsetClock::new());
    let store = Arc::new(MemoryStore::new());
    let compute = compute(&config, store.clone(), clock.clone()).await;
    let launch_and_terminate = |n: usize| {
        let compute = compute.clone();
        let clock = clock.clone();
        async move {
            let mut request = launch(IMAGE, "t3.micro", 1, None);
            request.user_data = Some("I".repeat(8 * 1024));
            request.client_token = Some(format!("token-{n:04}"));
            request.fingerprint = format!("weight-{n}");
            request.tags = (0..3)
                .map(|t| ec2_gateway::compute::instances::Tag {
                    key: format!("key-{t}"),
                    value: format!("value-{t}"),
                })
                .collect();
            let id = compute
                .run_instances(USER_ACCOUNT, request)
                .await
                .unwrap_or_else(|e| panic!("launch {n}: {e:?}"))
                .instances[0]
                .id
                .clone();
            clock.advance(chrono::Duration::milliseconds(10));
            compute.advance_due(clock.now()).await.unwrap();
            compute
                .change_state(
                    USER_ACCOUNT,
                    std::slice::from_ref(&id),
                    StateAction::Terminate,
                    false,
                )
                .await
                .unwrap();
            clock.advance(chrono::Duration::milliseconds(10));
            compute.advance_due(clock.now()).await.unwrap();
            let instance = compute
                .instances(USER_ACCOUNT, &[id], None)
                .await
                .unwrap()
                .remove(0);
            assert_eq!(instance.state, InstanceState::Terminated);
            assert_eq!(
                instance.tags.len(),
                3,
                "a terminated instance shows its tags"
            );
        }
    };
    // The account's first launch creates its usage records.
    launch_and_terminate(0).await;
    let before = stored_bytes(&store).await;
    for n in 1..=INSTANCES {
        launch_and_terminate(n).await;
    }
    let after = stored_bytes(&store).await;
    let grown: std::collections::BTreeMap<&String, isize> = after
        .iter()
        .map(|(table, bytes)| {
            let was = before.get(table).copied().unwrap_or(0);
            (table, *bytes as isize - was as isize)
        })
        .filter(|(_, grown)| *grown != 0)
        .collect();
    let per_instance = grown.values().sum::<isize>() / INSTANCES as isize;
    assert!(
        per_instance <= 2048,
        "a terminated instance keeps {per_instance} bytes of records; by table: {grown:?}"
    );
}

#[tokio::test]
async fn a_restart_completes_transitions_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_delays(&dir.path().join("data"), StorageBackend::Sled);
    let clock = Arc::new(OffsetClock::new());
    let db = dir.path().join("db");
    let (pending, stopping) = {
        let compute = compute(
            &config,
            Arc::new(SledStore::open(&db, 1 << 20).unwrap()),
            clock.clone(),
        )
        .await;
        let a = compute
            .run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
            .await
            .unwrap()
            .instances[0]
            .id
            .clone();
        let b = compute
            .run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
            .await
            .unwrap()
            .instances[0]
            .id
            .clone();
        clock.advance(chrono::Duration::seconds(3));
        compute.advance_due(clock.now()).await.unwrap();
        compute
            .change_state(
                USER_ACCOUNT,
                std::slice::from_ref(&b),
                StateAction::Stop,
                false,
            )
            .await
            .unwrap();
        // "Crash": no driver ever ran, and a was left pending on purpose.
        let c = compute
            .run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
            .await
            .unwrap()
            .instances[0]
            .id
            .clone();
        assert_eq!(state_of(&compute, &c).await, InstanceState::Pending);
        let _ = a;
        (c, b)
    };
    clock.advance(chrono::Duration::seconds(5));
    let compute = compute(
        &config,
        Arc::new(SledStore::open(&db, 1 << 20).unwrap()),
        clock.clone(),
    )
    .await;
    assert_eq!(state_of(&compute, &pending).await, InstanceState::Pending);
    assert_eq!(state_of(&compute, &stopping).await, InstanceState::Stopping);
    let driver = tokio::spawn(ec2_gateway::compute::lifecycle::drive(compute.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state_of(&compute, &pending).await, InstanceState::Running);
    assert_eq!(state_of(&compute, &stopping).await, InstanceState::Stopped);
    let used: u32 = compute
        .services()
        .hosts()
        .await
        .unwrap()
        .iter()
        .map(|h| h.vcpus_used)
        .sum();
    assert_eq!(
        used, 4,
        "two running instances hold capacity, the stopped one none"
    );
    driver.abort();
}

mod capacity {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Run {
            large: bool,
            count: u32,
            zone: Option<usize>,
        },
        Stop(usize),
        Start(usize),
        Terminate(usize),
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), 1u32..5, proptest::option::of(0usize..3))
                .prop_map(|(large, count, zone)| Op::Run { large, count, zone }),
            (0usize..64).prop_map(Op::Stop),
            (0usize..64).prop_map(Op::Start),
            (0usize..64).prop_map(Op::Terminate),
            (0i64..3).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn capacity_in_use_never_exceeds_a_host(ops in proptest::collection::vec(op(), 1..40)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let mut config = config_with_delays(dir.path(), StorageBackend::Memory);
                config.quotas.max_instances = 1000;
                config.quotas.max_vcpus = 10_000;
                let clock = Arc::new(OffsetClock::new());
                let compute = compute(&config, Arc::new(MemoryStore::new()), clock.clone()).await;
                let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
                let mut ids: Vec<String> = Vec::new();
                for op in ops {
                    let pick = |i: usize| (!ids.is_empty()).then(|| ids[i % ids.len()].clone());
                    match op {
                        Op::Run { large, count, zone } => {
                            let instance_type = if large { "m5.2xlarge" } else { "t3.micro" };
                            if let Ok(r) = compute.run_instances(USER_ACCOUNT, launch(IMAGE, instance_type, count, zone.map(|z| zones[z]))).await {
                                ids.extend(r.instances.into_iter().map(|i| i.id));
                            }
                        }
                        Op::Stop(i) => if let Some(id) = pick(i) { let _ = compute.change_state(USER_ACCOUNT, &[id], StateAction::Stop, false).await; },
                        Op::Start(i) => if let Some(id) = pick(i) { let _ = compute.change_state(USER_ACCOUNT, &[id], StateAction::Start, false).await; },
                        Op::Terminate(i) => if let Some(id) = pick(i) { let _ = compute.change_state(USER_ACCOUNT, &[id], StateAction::Terminate, false).await; },
                        Op::Advance(seconds) => {
                            clock.advance(chrono::Duration::seconds(seconds));
                            compute.services().heartbeat_simulated(clock.now()).await.unwrap();
                            compute.advance_due(clock.now()).await.unwrap();
                        }
                    }
                    let instances = compute.instances(USER_ACCOUNT, &[], None).await.unwrap();
                    for host in compute.services().hosts().await.unwrap() {
                        prop_assert!(host.vcpus_used <= host.vcpus, "{} uses {} of {} vCPUs", host.host, host.vcpus_used, host.vcpus);
                        prop_assert!(host.memory_mib_used <= host.memory_mib);
                        let holding: Vec<_> = instances.iter().filter(|i| i.host.as_deref() == Some(host.host.as_str())).collect();
                        prop_assert!(holding.iter().all(|i| i.state.holds_capacity()));
                        prop_assert_eq!(host.vcpus_used, holding.iter().map(|i| i.vcpus).sum::<u32>());
                        prop_assert!(holding.iter().all(|i| i.availability_zone == host.availability_zone));
                    }
                }
                Ok(())
            })?;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn client_tokens_are_kept_a_day_past_termination() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(&config_with_delays(dir.path(), StorageBackend::Memory)).await;
    let compute = running.compute.clone();
    let with_token = || LaunchRequest {
        client_token: Some("nightly-build".into()),
        ..launch(IMAGE, "t3.micro", 1, None)
    };
    let first = compute
        .run_instances(USER_ACCOUNT, with_token())
        .await
        .unwrap();
    compute
        .change_state(
            USER_ACCOUNT,
            &[first.instances[0].id.clone()],
            StateAction::Terminate,
            false,
        )
        .await
        .unwrap();
    // Terminated after 1 s, purged an hour later: the token still answers.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    let again = compute
        .run_instances(USER_ACCOUNT, with_token())
        .await
        .unwrap();
    assert_eq!(again.reservation_id, first.reservation_id);
    assert!(
        again.instances.is_empty(),
        "the instance itself has been purged"
    );
    tokio::time::sleep(Duration::from_secs(21 * 3600)).await;
    let still = compute
        .run_instances(USER_ACCOUNT, with_token())
        .await
        .unwrap();
    assert_eq!(
        still.reservation_id, first.reservation_id,
        "23 h after termination"
    );
    // A day after termination the token is forgotten: the same token launches anew.
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    let fresh = compute
        .run_instances(USER_ACCOUNT, with_token())
        .await
        .unwrap();
    assert_ne!(fresh.reservation_id, first.reservation_id);
    assert_eq!(fresh.instances.len(), 1);
}

/// More than 256 hosts: placements read a view of the hosts' usage kept
/// for up to 500 ms instead of every host's usage record. A refusal made
/// on that view is decided again on the usage as stored, so capacity freed
/// a moment ago is found at once (not after the view's next refresh), and
/// a fleet that is really full is still refused.
#[tokio::test]
async fn over_256_hosts_a_refusal_from_the_placement_view_is_decided_again() {
    const HOSTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir.path().join("data"), StorageBackend::Memory);
    config.hosts = (0..HOSTS)
        .map(|n| ec2_gateway::config::HostConfig {
            name: format!("h{n:03}"),
            availability_zone: "us-east-1a".into(),
            vcpus: 2,
            memory_mib: 4096,
            simulated: true,
        })
        .collect();
    config.quotas.max_instances = 10_000;
    config.quotas.max_vcpus = 100_000;
    config.lifecycle.terminate_delay_secs = 0;
    let clock = Arc::new(OffsetClock::new());
    let compute = compute(&config, Arc::new(MemoryStore::new()), clock.clone()).await;
    // Fill every host: one t3.micro (2 vCPUs) each.
    let mut ids = Vec::new();
    while ids.len() < HOSTS {
        let reservation = compute
            .run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 50, None))
            .await
            .unwrap();
        ids.extend(reservation.instances.into_iter().map(|i| i.id));
    }
    assert_eq!(ids.len(), HOSTS);
    // Once the view built while filling has aged (500 ms), the next
    // placement builds it anew: full. Another account asks (the first is
    // at its vCPU limit, the whole fleet), and is refused.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let refused = compute
        .run_instances(ADMIN_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "InsufficientInstanceCapacity");
    // Free one host: terminate, and let the (zero-delay) transition apply.
    compute
        .change_state(
            USER_ACCOUNT,
            std::slice::from_ref(&ids[137]),
            StateAction::Terminate,
            false,
        )
        .await
        .unwrap();
    compute.advance_due(clock.now()).await.unwrap();
    assert_eq!(
        state_of(&compute, &ids[137]).await,
        InstanceState::Terminated
    );
    // At once (the view built by the refusal above is a few milliseconds
    // old, and shows every host full): the freed host is found. Without
    // the second decision this launch is refused; a machine so slow that
    // the view aged meanwhile would rebuild it and find the host too.
    let placed = compute
        .run_instances(ADMIN_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
        .await
        .expect("the capacity freed a moment ago");
    assert_eq!(placed.instances.len(), 1);
    let used: u32 = compute
        .services()
        .hosts()
        .await
        .unwrap()
        .iter()
        .map(|h| h.vcpus_used)
        .sum();
    assert_eq!(used, 2 * HOSTS as u32, "no host booked twice");
    // Full again: refused again.
    let refused = compute
        .run_instances(ADMIN_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "InsufficientInstanceCapacity");
}

/// The ids of a page, and for each whether it came from the index (kept
/// between listings) and the entry itself (to tell a kept entry from a new
/// one).
async fn listed(
    compute: &Compute,
    account: &str,
) -> Vec<(
    String,
    bool,
    Arc<ec2_gateway::compute::instance_index::Listed>,
)> {
    let (page, more) = compute
        .instance_page(account, (None, None), None, true)
        .await
        .unwrap();
    assert!(!more);
    page.into_iter()
        .map(|l| (l.spec().id.clone(), l.keeps_rendering(), l))
        .collect()
}

/// Tags the user account's instance `id` with team=blue.
async fn tag_team_blue(core: &Compute, id: &str) {
    use ec2_gateway::compute::instances::Tag;
    use ec2_gateway::compute::tags::TagChange;
    core.change_tags(
        USER_ACCOUNT,
        &[id.to_string()],
        TagChange::Set(vec![Tag {
            key: "team".into(),
            value: "blue".into(),
        }]),
        false,
    )
    .await
    .unwrap();
}

/// A core on memory whose listing index has room for `room` instances.
async fn core_with_listing_room(dir: &std::path::Path, room: usize) -> Arc<Compute> {
    let mut config = test_config(dir, StorageBackend::Memory);
    config.listing_cache_instances = room;
    compute(
        &config,
        Arc::new(MemoryStore::new()),
        Arc::new(TokioClock::new()),
    )
    .await
}

/// DescribeInstances' index (`compute::instance_index`) with room for 3
/// instances: an account of 2 is kept (the same entries listed twice); a
/// tag replaces only the tagged entry; a second account of 2 takes the
/// first's place (the least recently used); an account of 4 is read from
/// the store; an index left unused is dropped by the idle sweep; and with
/// no room, nothing is kept.
#[tokio::test]
async fn listings_kept_in_memory_stay_within_their_room() {
    let dir = tempfile::tempdir().unwrap();
    let core = core_with_listing_room(dir.path(), 3).await;
    for account in [USER_ACCOUNT, ADMIN_ACCOUNT] {
        core.run_instances(account, launch(IMAGE, "t3.micro", 2, None))
            .await
            .unwrap();
    }

    let first = listed(&core, USER_ACCOUNT).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|(_, indexed, _)| *indexed));
    let again = listed(&core, USER_ACCOUNT).await;
    assert!(first
        .iter()
        .zip(&again)
        .all(|(a, b)| Arc::ptr_eq(&a.2, &b.2)));

    // A change: its entry is read again, the other is kept.
    tag_team_blue(&core, &first[0].0).await;
    let tagged = listed(&core, USER_ACCOUNT).await;
    assert!(!Arc::ptr_eq(&first[0].2, &tagged[0].2));
    assert_eq!(tagged[0].2.spec().tags.len(), 1);
    assert!(Arc::ptr_eq(&first[1].2, &tagged[1].2));

    // Another account takes the room: the first is read anew next time.
    let other = listed(&core, ADMIN_ACCOUNT).await;
    assert!(other.iter().all(|(_, indexed, _)| *indexed));
    let anew = listed(&core, USER_ACCOUNT).await;
    assert!(anew.iter().all(|(_, indexed, _)| *indexed));
    assert!(!Arc::ptr_eq(&tagged[1].2, &anew[1].2));

    // Past the room, an account is listed from the store.
    core.run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 2, None))
        .await
        .unwrap();
    let big = listed(&core, USER_ACCOUNT).await;
    assert_eq!(big.len(), 4);
    assert!(big.iter().all(|(_, indexed, _)| !*indexed));

    // An index no listing used for a while is dropped; a recent one is not.
    let dir = tempfile::tempdir().unwrap();
    let core = core_with_listing_room(dir.path(), 3).await;
    core.run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 2, None))
        .await
        .unwrap();
    let kept = listed(&core, USER_ACCOUNT).await;
    assert_eq!(
        core.listings()
            .forget_idle(std::time::Duration::from_secs(3600)),
        0
    );
    let still = listed(&core, USER_ACCOUNT).await;
    assert!(kept
        .iter()
        .zip(&still)
        .all(|(a, b)| Arc::ptr_eq(&a.2, &b.2)));
    assert_eq!(core.listings().forget_idle(std::time::Duration::ZERO), 2);
    let rebuilt = listed(&core, USER_ACCOUNT).await;
    assert!(rebuilt.iter().all(|(_, indexed, _)| *indexed));
    assert!(kept
        .iter()
        .zip(&rebuilt)
        .all(|(a, b)| !Arc::ptr_eq(&a.2, &b.2)));

    // No room at all.
    let dir = tempfile::tempdir().unwrap();
    let core = core_with_listing_room(dir.path(), 0).await;
    core.run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
        .await
        .unwrap();
    assert!(listed(&core, USER_ACCOUNT)
        .await
        .iter()
        .all(|(_, indexed, _)| !*indexed));
}

/// Instances asked for by id (`compute::polled_instances`): asked twice,
/// the same entry (its rendered item with it); after a change to it, a
/// new entry showing the change, while another instance keeps its own;
/// another account's id is not found; an entry no request asked for is
/// dropped by the idle sweep, a recent one is not; with no listing room
/// configured, none is kept.
#[tokio::test]
async fn instances_polled_by_id_are_kept_while_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let none = core_with_listing_room(dir.path(), 0).await;
    let reservation = none
        .run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 1, None))
        .await
        .unwrap();
    let id = reservation.instances[0].id.clone();
    for _ in 0..2 {
        let found = none
            .listed_instances(USER_ACCOUNT, std::slice::from_ref(&id))
            .await
            .unwrap();
        assert_eq!(found[0].spec().id, id);
    }
    assert!(none.polled_instances().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let core = core_with_listing_room(dir.path(), 30).await;
    let reservation = core
        .run_instances(USER_ACCOUNT, launch(IMAGE, "t3.micro", 2, None))
        .await
        .unwrap();
    let ids: Vec<String> = reservation.instances.iter().map(|i| i.id.clone()).collect();
    let polled = |id: &str| {
        let core = core.clone();
        let id = id.to_string();
        async move {
            let mut found = core
                .listed_instances(USER_ACCOUNT, std::slice::from_ref(&id))
                .await
                .unwrap();
            assert_eq!(found.len(), 1);
            let listed = found.pop().unwrap();
            assert_eq!(listed.spec().id, id);
            assert!(listed.keeps_rendering());
            listed
        }
    };
    let first = polled(&ids[0]).await;
    let other = polled(&ids[1]).await;
    assert!(Arc::ptr_eq(&first, &polled(&ids[0]).await));
    assert_eq!(core.polled_instances().len(), 2);

    tag_team_blue(&core, &ids[0]).await;
    let tagged = polled(&ids[0]).await;
    assert!(!Arc::ptr_eq(&first, &tagged));
    assert_eq!(tagged.spec().tags.len(), 1);
    assert!(Arc::ptr_eq(&other, &polled(&ids[1]).await));

    let elsewhere = core
        .listed_instances(ADMIN_ACCOUNT, std::slice::from_ref(&ids[0]))
        .await;
    assert_eq!(elsewhere.unwrap_err().code(), "InvalidInstanceID.NotFound");

    assert_eq!(
        core.polled_instances()
            .forget_idle(std::time::Duration::from_secs(3600)),
        0
    );
    assert!(Arc::ptr_eq(&tagged, &polled(&ids[0]).await));
    assert_eq!(
        core.polled_instances()
            .forget_idle(std::time::Duration::ZERO),
        2
    );
    assert!(core.polled_instances().is_empty());
    assert!(!Arc::ptr_eq(&tagged, &polled(&ids[0]).await));
}
