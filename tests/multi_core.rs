//! Several compute cores, one store: the property that makes a cluster
//! possible.
//!
//! Three `Compute` instances (three gateways, as far as the core can tell:
//! each has its own store handle and nothing in memory in common) share one
//! memory store. A property test draws random operations (launches with
//! and without ClientTokens, stop, start, terminate, security groups and
//! rules, key pairs, volumes and attachments, Elastic IPs, tags, time
//! passing), runs them from four concurrent tasks spread over the cores on
//! a multi-threaded runtime, and then checks the invariants on what the
//! store holds: host capacity booked exactly once and never above a host's
//! size, quotas never exceeded and usage records equal to what they count,
//! one reservation per ClientToken, no live instance in a deleted group,
//! unique names, no address handed out twice. On memory (also with each
//! core batching its concurrent commits, as it does on etcd), on sled and on a
//! store whose every call waits as a network store's does (so every
//! operation takes the path an etcd backend will); cases:
//! `EC2_GATEWAY_MULTI_CORE_CASES` (default 256; an eighth of that on sled,
//! where every commit is flushed, and on the waiting store).

mod common;

use common::remote::RemoteShaped;
use common::{test_config, ADMIN_ACCOUNT, USER_ACCOUNT};
use ec2_gateway::clock::{Clock, OffsetClock};
use ec2_gateway::compute::addresses::{Address, AddressSelector, AssociationTarget};
use ec2_gateway::compute::instances::{Instance, InstanceState, LaunchRequest, StateAction, Tag};
use ec2_gateway::compute::keymaterial::{KeyFormat, KeyType};
use ec2_gateway::compute::security_groups::{
    Direction, GroupSelector, RulePeer, RuleSpec, SecurityGroup,
};
use ec2_gateway::compute::tags::TagChange;
use ec2_gateway::compute::usage::Usage;
use ec2_gateway::compute::volumes::{NewVolume, Volume};
use ec2_gateway::compute::Compute;
use ec2_gateway::config::{Config, StorageBackend};
use ec2_gateway::store::{MemoryStore, SledStore, Store, StoreHandle};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const ACCOUNTS: [&str; 2] = [USER_ACCOUNT, ADMIN_ACCOUNT];

/// Tight quotas, so that concurrent requests race for the last unit.
const MAX_INSTANCES: u32 = 10;
const MAX_KEY_PAIRS: u32 = 2;
const MAX_GROUPS: u32 = 3;
const MAX_ADDRESSES: u32 = 2;
const MAX_VOLUMES: u32 = 3;

fn config(dir: &std::path::Path) -> Config {
    let mut config = test_config(dir, StorageBackend::Memory);
    config.lifecycle.boot_delay_secs = 1;
    config.lifecycle.stop_delay_secs = 1;
    config.lifecycle.terminate_delay_secs = 1;
    config.lifecycle.terminated_retention_secs = 3600;
    config.quotas.max_instances = MAX_INSTANCES;
    config.quotas.max_key_pairs = MAX_KEY_PAIRS;
    config.quotas.max_security_groups = MAX_GROUPS;
    config.quotas.max_elastic_ips = MAX_ADDRESSES;
    config.quotas.max_volumes = MAX_VOLUMES;
    config
}

#[derive(Debug, Clone)]
enum Op {
    /// A launch; with a token, its parameters follow from the token so
    /// that a retry is the same request.
    Run {
        large: bool,
        count: u32,
        zone: Option<usize>,
        token: Option<u8>,
        group: Option<u8>,
    },
    Stop(usize),
    Start(usize),
    Terminate(usize),
    CreateGroup(u8),
    DeleteGroup(u8),
    /// Group `.0` lets in traffic from group `.1`.
    Authorize(u8, u8),
    CreateKeyPair(u8),
    DeleteKeyPair(u8),
    CreateVolume(usize, u32),
    Attach(usize, usize, u8),
    Detach(usize),
    DeleteVolume(usize),
    Allocate,
    Associate(usize, usize),
    Release(usize),
    Tag(usize, u8),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 1u32..4, proptest::option::of(0usize..3), proptest::option::of(0u8..3), proptest::option::of(0u8..3))
            .prop_map(|(large, count, zone, token, group)| Op::Run { large, count, zone, token, group }),
        2 => (0usize..64).prop_map(Op::Stop),
        2 => (0usize..64).prop_map(Op::Start),
        2 => (0usize..64).prop_map(Op::Terminate),
        1 => (0u8..3).prop_map(Op::CreateGroup),
        1 => (0u8..3).prop_map(Op::DeleteGroup),
        1 => (0u8..3, 0u8..3).prop_map(|(a, b)| Op::Authorize(a, b)),
        1 => (0u8..3).prop_map(Op::CreateKeyPair),
        1 => (0u8..3).prop_map(Op::DeleteKeyPair),
        1 => (0usize..3, 1u32..400).prop_map(|(z, s)| Op::CreateVolume(z, s)),
        1 => (0usize..16, 0usize..64, 0u8..3).prop_map(|(v, i, d)| Op::Attach(v, i, d)),
        1 => (0usize..16).prop_map(Op::Detach),
        1 => (0usize..16).prop_map(Op::DeleteVolume),
        1 => Just(Op::Allocate),
        1 => (0usize..8, 0usize..64).prop_map(|(a, i)| Op::Associate(a, i)),
        1 => (0usize..8).prop_map(Op::Release),
        1 => (0usize..64, 0u8..4).prop_map(|(i, t)| Op::Tag(i, t)),
        2 => (0i64..3).prop_map(Op::Advance),
    ]
}

/// What the tasks learned, shared (the test's bookkeeping, not the core's).
#[derive(Default)]
struct Known {
    instances: Vec<(usize, String)>,
    volumes: Vec<(usize, String)>,
    addresses: Vec<(usize, String)>,
}

fn pick(list: &[(usize, String)], i: usize) -> Option<(usize, String)> {
    (!list.is_empty()).then(|| list[i % list.len()].clone())
}

fn launch(
    large: bool,
    count: u32,
    zone: Option<usize>,
    token: Option<u8>,
    group: Option<u8>,
) -> LaunchRequest {
    // A token fixes the rest of the request: a retry is the same request.
    let (large, count, zone, group) = match token {
        Some(t) => (t % 2 == 1, 1 + u32::from(t % 2), None, None),
        None => (large, count, zone, group),
    };
    let instance_type = if large { "m5.2xlarge" } else { "t3.micro" };
    LaunchRequest {
        image_id: IMAGE.into(),
        instance_type: instance_type.into(),
        min_count: 1,
        max_count: count,
        availability_zone: zone.map(|z| ZONES[z].to_string()),
        security_group_names: group.map(|g| vec![format!("g{g}")]).unwrap_or_default(),
        client_token: token.map(|t| format!("token-{t}")),
        shutdown_behavior: "stop".into(),
        fingerprint: format!("{instance_type}/{count}/{zone:?}/{group:?}"),
        ..LaunchRequest::default()
    }
}

/// Runs one operation on `core` (errors are answers too: only the
/// invariants afterwards matter).
async fn apply(core: &Compute, clock: &OffsetClock, account: usize, op: Op, known: &Mutex<Known>) {
    let account_id = ACCOUNTS[account];
    let instance = |i: usize| {
        let known = known.lock().unwrap();
        let own: Vec<(usize, String)> = known
            .instances
            .iter()
            .filter(|(a, _)| *a == account)
            .cloned()
            .collect();
        pick(&own, i).map(|(_, id)| id)
    };
    match op {
        Op::Run {
            large,
            count,
            zone,
            token,
            group,
        } => {
            if let Ok(reservation) = core
                .run_instances(account_id, launch(large, count, zone, token, group))
                .await
            {
                let mut known = known.lock().unwrap();
                for launched in reservation.instances {
                    if !known.instances.iter().any(|(_, id)| id == &launched.id) {
                        known.instances.push((account, launched.id));
                    }
                }
            }
        }
        Op::Stop(i) | Op::Start(i) | Op::Terminate(i) => {
            let action = match op {
                Op::Stop(_) => StateAction::Stop,
                Op::Start(_) => StateAction::Start,
                _ => StateAction::Terminate,
            };
            if let Some(id) = instance(i) {
                let _ = core.change_state(account_id, &[id], action, false).await;
            }
        }
        Op::CreateGroup(g) => {
            let _ = core
                .create_security_group(
                    account_id,
                    &format!("g{g}"),
                    "test",
                    None,
                    Vec::new(),
                    false,
                )
                .await;
        }
        Op::DeleteGroup(g) => {
            let _ = core
                .delete_security_group(account_id, &GroupSelector::Name(format!("g{g}")), false)
                .await;
        }
        Op::Authorize(to, from) => {
            let peer = core
                .security_group(account_id, &GroupSelector::Name(format!("g{from}")))
                .await;
            if let Ok(peer) = peer {
                let spec = RuleSpec {
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    peer: RulePeer::Group {
                        group_id: peer.id,
                        account_id: account_id.to_string(),
                    },
                    description: None,
                };
                let _ = core
                    .authorize_rules(
                        account_id,
                        &GroupSelector::Name(format!("g{to}")),
                        Direction::Ingress,
                        vec![spec],
                        false,
                    )
                    .await;
            }
        }
        Op::CreateKeyPair(k) => {
            let _ = core
                .create_key_pair(
                    account_id,
                    &format!("k{k}"),
                    KeyType::Ed25519,
                    KeyFormat::Pem,
                    Vec::new(),
                    false,
                )
                .await;
        }
        Op::DeleteKeyPair(k) => {
            let _ = core
                .delete_key_pair(account_id, Some(&format!("k{k}")), None, false)
                .await;
        }
        Op::CreateVolume(zone, size) => {
            let request = NewVolume {
                size_gib: Some(size),
                snapshot_id: None,
                availability_zone: ZONES[zone].into(),
                volume_type: "gp3".into(),
                iops: None,
                throughput: None,
                tags: Vec::new(),
                client_token: None,
                fingerprint: String::new(),
                encrypted: false,
                kms_key_id: None,
            };
            if let Ok(volume) = core.create_volume(account_id, request, false).await {
                known.lock().unwrap().volumes.push((account, volume.id));
            }
        }
        Op::Attach(v, i, device) => {
            let volume = pick(&known.lock().unwrap().volumes, v);
            if let (Some((owner, volume)), Some(instance)) = (volume, instance(i)) {
                if owner == account {
                    let device = format!("/dev/sd{}", (b'f' + device) as char);
                    let _ = core
                        .attach_volume(account_id, &volume, &instance, &device, false)
                        .await;
                }
            }
        }
        Op::Detach(v) | Op::DeleteVolume(v) => {
            let picked = pick(&known.lock().unwrap().volumes, v);
            if let Some((owner, volume)) = picked {
                let account_id = ACCOUNTS[owner];
                let _ = match op {
                    Op::Detach(_) => core
                        .detach_volume(account_id, &volume, None, None, false)
                        .await
                        .map(|_| ()),
                    _ => core.delete_volume(account_id, &volume, false).await,
                };
            }
        }
        Op::Allocate => {
            if let Ok(address) = core.allocate_address(account_id, Vec::new(), false).await {
                known
                    .lock()
                    .unwrap()
                    .addresses
                    .push((account, address.allocation_id));
            }
        }
        Op::Associate(a, i) => {
            let address = pick(&known.lock().unwrap().addresses, a);
            if let (Some((owner, address)), Some(instance)) = (address, instance(i)) {
                if owner == account {
                    let _ = core
                        .associate_address(
                            account_id,
                            &AddressSelector::AllocationId(address),
                            &AssociationTarget::Instance(instance),
                            None,
                            true,
                            false,
                        )
                        .await;
                }
            }
        }
        Op::Release(a) => {
            let picked = pick(&known.lock().unwrap().addresses, a);
            if let Some((owner, address)) = picked {
                let _ = core
                    .release_address(
                        ACCOUNTS[owner],
                        &AddressSelector::AllocationId(address),
                        false,
                    )
                    .await;
            }
        }
        Op::Tag(i, t) => {
            if let Some(id) = instance(i) {
                let tag = Tag {
                    key: format!("k{t}"),
                    value: format!("v{t}"),
                };
                let _ = core
                    .change_tags(account_id, &[id], TagChange::Set(vec![tag]), false)
                    .await;
            }
        }
        Op::Advance(seconds) => {
            clock.advance(chrono::Duration::seconds(seconds));
            core.services()
                .heartbeat_simulated(clock.now())
                .await
                .unwrap();
            core.advance_due(clock.now()).await.unwrap();
        }
    }
}

/// Every record of `tree` in the store, decoded.
async fn records<T: ec2_gateway::store::Record>(store: &StoreHandle, tree: &str) -> Vec<T> {
    store.records(tree, b"").await.unwrap()
}

/// Checks every invariant on what the store holds.
async fn check_invariants(core: &Compute, store: &StoreHandle) -> Result<(), TestCaseError> {
    let mut instances: Vec<Instance> = Vec::new();
    for account in ACCOUNTS {
        instances.extend(core.instances(account, &[], None).await.unwrap());
    }
    // Capacity: booked exactly by the instances holding it, never above.
    for host in core.services().hosts().await.unwrap() {
        let holding: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.host.as_deref() == Some(host.host.as_str()))
            .collect();
        prop_assert!(holding.iter().all(|i| i.state.holds_capacity()));
        prop_assert!(
            host.vcpus_used <= host.vcpus,
            "{} books {} of {} vCPUs",
            host.host,
            host.vcpus_used,
            host.vcpus
        );
        prop_assert_eq!(
            host.vcpus_used,
            holding.iter().map(|i| i.vcpus).sum::<u32>(),
            "vCPUs booked on {}",
            host.host
        );
        prop_assert_eq!(
            host.memory_mib_used,
            holding.iter().map(|i| i.memory_mib).sum::<u64>()
        );
    }
    for account in ACCOUNTS {
        let own: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.account_id == account)
            .collect();
        let live = own
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .count() as u64;
        let vcpus: u64 = own
            .iter()
            .filter(|i| i.state.holds_capacity())
            .map(|i| u64::from(i.vcpus))
            .sum();
        prop_assert!(
            live <= u64::from(MAX_INSTANCES),
            "{account}: {live} instances"
        );
        prop_assert!(
            vcpus <= u64::from(core.vcpu_limit().await.unwrap()),
            "{account}: {vcpus} vCPUs"
        );
        if let Some(usage) = store
            .get_record::<Usage>("usage", format!("{account}/instances").as_bytes())
            .await
            .unwrap()
        {
            prop_assert_eq!((usage.count, usage.amount), (live, vcpus), "instance usage");
        }
        // Private addresses: unique among the account's live instances.
        let mut private: BTreeSet<&str> = BTreeSet::new();
        for instance in own.iter().filter(|i| i.state != InstanceState::Terminated) {
            prop_assert!(
                private.insert(&instance.private_ip),
                "{} given twice",
                instance.private_ip
            );
        }
        // Names and quotas of the other kinds.
        let pairs = core.key_pairs(account).await.unwrap();
        prop_assert!(pairs.len() as u32 <= MAX_KEY_PAIRS);
        let groups: Vec<SecurityGroup> = store
            .records("security_groups", format!("{account}/").as_bytes())
            .await
            .unwrap();
        prop_assert!(groups.len() as u32 <= MAX_GROUPS, "{} groups", groups.len());
        let names: BTreeSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        prop_assert_eq!(names.len(), groups.len(), "group names are unique");
        // No live instance in a group that is gone; no rule pointing at one.
        for instance in own.iter().filter(|i| i.state != InstanceState::Terminated) {
            for group in &instance.security_groups {
                prop_assert!(
                    groups.iter().any(|g| g.id == group.id),
                    "{} is in the deleted group {}",
                    instance.id,
                    group.name
                );
            }
        }
        for group in &groups {
            for rule in group.ingress.iter().chain(&group.egress) {
                if let RulePeer::Group { group_id, .. } = &rule.peer {
                    prop_assert!(groups.iter().any(|g| &g.id == group_id));
                }
            }
        }
        let addresses = core.addresses(account).await.unwrap();
        prop_assert!(addresses.len() as u32 <= MAX_ADDRESSES);
        let volumes = core.volumes(account).await.unwrap();
        prop_assert!(volumes.len() as u32 <= MAX_VOLUMES);
        // One device per instance, one instance per address.
        let mut devices = BTreeSet::new();
        for volume in &volumes {
            if let Some(attachment) = &volume.attachment {
                prop_assert!(devices.insert((&attachment.instance_id, &attachment.device)));
            }
        }
        let mut associated = BTreeSet::new();
        for address in &addresses {
            if let Some(association) = &address.association {
                prop_assert!(
                    associated.insert(&association.instance_id),
                    "two addresses on {}",
                    association.instance_id
                );
            }
        }
    }
    // One reservation per ClientToken.
    let mut reservations: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for instance in &instances {
        if let Some(token) = &instance.client_token {
            reservations
                .entry((&instance.account_id, token))
                .or_default()
                .insert(&instance.reservation_id);
        }
    }
    for ((account, token), ids) in &reservations {
        prop_assert_eq!(
            ids.len(),
            1,
            "{} {} has reservations {:?}",
            account,
            token,
            ids
        );
    }
    // Pool addresses: never handed out twice, across accounts.
    let all: Vec<Address> = records(store, "addresses").await;
    let public: BTreeSet<&str> = all.iter().map(|a| a.public_ip.as_str()).collect();
    prop_assert_eq!(public.len(), all.len(), "an Elastic IP given twice");
    // Volume pools equal what the volumes take.
    let volumes: Vec<Volume> = records(store, "volumes").await;
    let mut by_zone: BTreeMap<&str, u64> = BTreeMap::new();
    for volume in &volumes {
        *by_zone.entry(&volume.availability_zone).or_default() += u64::from(volume.size_gib);
    }
    for zone in ZONES {
        if let Some(used) = store
            .get_record::<u64>("volume_pools", zone.as_bytes())
            .await
            .unwrap()
        {
            prop_assert_eq!(
                used,
                by_zone.get(zone).copied().unwrap_or(0),
                "pool of {}",
                zone
            );
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("EC2_GATEWAY_MULTI_CORE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The store the cores share.
#[derive(Clone)]
enum Backend {
    Memory,
    /// Memory, each core batching its concurrent operations' commits as
    /// it does on etcd (`store::batch`).
    MemoryBatched,
    Sled,
    /// Memory behind calls that all wait, as a network store's do.
    RemoteShaped,
    /// Real etcd members; every case under a prefix of its own.
    #[cfg(feature = "etcd")]
    Etcd {
        endpoints: Vec<String>,
    },
}

/// Runs `streams` concurrently on three cores over one store of
/// `backend`, then checks the invariants (twice: as left, and once every
/// transition has completed).
fn run_case(backend: Backend, streams: Vec<Vec<(usize, usize, Op)>>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let remote = Arc::new(RemoteShaped::new());
        let store: Arc<dyn Store> = match backend {
            Backend::Memory | Backend::MemoryBatched => Arc::new(MemoryStore::new()),
            Backend::Sled => Arc::new(SledStore::open(&dir.path().join("db"), 8 << 20).unwrap()),
            Backend::RemoteShaped => remote.clone(),
            #[cfg(feature = "etcd")]
            Backend::Etcd { ref endpoints } => {
                static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let case = CASE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let config = ec2_gateway::config::EtcdConfig {
                    endpoints: endpoints.clone(),
                    prefix: format!("case-{case}/"),
                    ..ec2_gateway::config::EtcdConfig::default()
                };
                Arc::new(
                    ec2_gateway::store::EtcdStore::connect(&config)
                        .await
                        .unwrap(),
                )
            }
        };
        let clock = Arc::new(OffsetClock::new());
        let mut cores = Vec::new();
        for _ in 0..3 {
            let batched = matches!(backend, Backend::MemoryBatched) || store.shared();
            let handle = StoreHandle::new(store.clone()).batching_if(batched);
            prop_assert_eq!(handle.batcher().is_some(), batched);
            let core = Compute::open(&config, Arc::new(handle), clock.clone())
                .await
                .unwrap();
            cores.push(Arc::new(core));
        }
        for account in ACCOUNTS {
            cores[0].provision_defaults(account).await.unwrap();
        }
        let known = Arc::new(Mutex::new(Known::default()));
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let (cores, clock, known) = (cores.clone(), clock.clone(), known.clone());
                tokio::spawn(async move {
                    for (core, account, op) in stream {
                        apply(&cores[core], &clock, account, op, &known).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let observer = StoreHandle::new(store.clone());
        check_invariants(&cores[0], &observer).await?;
        if let Backend::RemoteShaped = backend {
            prop_assert!(remote.waited_calls() > 0, "the cores waited for the store");
        }
        // Time passes: every transition completes, and the books still balance.
        clock.advance(chrono::Duration::seconds(5));
        for core in &cores {
            core.advance_due(clock.now()).await.unwrap();
        }
        check_invariants(&cores[1], &observer).await
    })
}

fn streams() -> impl Strategy<Value = Vec<Vec<(usize, usize, Op)>>> {
    proptest::collection::vec(
        proptest::collection::vec((0usize..3, 0usize..2, op()), 1..24),
        4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn several_cores_on_one_memory_store_keep_every_invariant(streams in streams()) {
        run_case(Backend::Memory, streams)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn several_cores_batching_commits_on_one_memory_store_keep_every_invariant(streams in streams()) {
        run_case(Backend::MemoryBatched, streams)?;
    }
}

proptest! {
    // Every commit is flushed to disk here: fewer cases.
    #![proptest_config(ProptestConfig { cases: (cases() / 8).max(1), ..ProptestConfig::default() })]

    #[test]
    fn several_cores_on_one_sled_store_keep_every_invariant(streams in streams()) {
        run_case(Backend::Sled, streams)?;
    }
}

proptest! {
    // Every call waits (a yield, or 1 ms): fewer cases.
    #![proptest_config(ProptestConfig { cases: (cases() / 8).max(1), ..ProptestConfig::default() })]

    #[test]
    fn several_cores_on_one_remote_shaped_store_keep_every_invariant(streams in streams()) {
        run_case(Backend::RemoteShaped, streams)?;
    }
}

/// The same property on a real three-member etcd cluster, which the test
/// starts and stops itself (cargo feature `etcd`): each case under its own
/// key prefix; an eighth of the cases, every call being a network round trip.
#[cfg(feature = "etcd")]
#[test]
fn several_cores_on_one_etcd_cluster_keep_every_invariant() {
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};
    let Some(binary) = common::etcd::etcd_binary("several_cores_on_one_etcd_cluster") else {
        return;
    };
    let cluster = common::etcd::EtcdCluster::start(&binary, 3);
    let backend = Backend::Etcd {
        endpoints: cluster.endpoints(),
    };
    let mut runner = TestRunner::new(RunnerConfig {
        cases: (cases() / 8).max(1),
        ..RunnerConfig::default()
    });
    let outcome = runner.run(&streams(), |streams| run_case(backend.clone(), streams));
    drop(cluster);
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
