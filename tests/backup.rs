//! Backups (issue 13): `ec2-gateway admin backup FILE` against a gateway
//! process under load, `ec2-gateway restore FILE --data-dir DIR`, and a new
//! gateway on the restored folder that answers every resource answered
//! before the backup began, with its hosts' reserved capacity equal to the
//! instances that hold it (a consistent snapshot, not a torn one).

mod common;

use common::etcd::{etcd_binary, EtcdCluster};
use common::process::{GatewayProcess, BINARY};
use common::*;
use ec2_gateway::client::{self, items, text_of, Endpoint};
use ec2_gateway::config::StorageBackend;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IMAGE: &str = "ami-0b1c2d3e4f5a6b7c8";

fn start_gateway(folder: &Path, name: &str, text: String) -> GatewayProcess {
    let config = folder.join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    GatewayProcess::start(&config)
}

fn admin_cli(endpoint: &Endpoint, args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .args(["admin", "--endpoint"])
        .arg(format!("http://{}", endpoint.authority))
        .args([
            "--access-key-id",
            ADMIN_KEY,
            "--secret-access-key",
            ADMIN_SECRET,
        ])
        .args(args)
        .output()
        .unwrap()
}

/// `ec2-gateway restore FILE --data-dir DIR`.
fn run_restore(file: &Path, data_dir: &Path) -> std::process::Output {
    Command::new(BINARY)
        .arg("restore")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

async fn launch(endpoint: &Endpoint, tag: &str) -> Option<String> {
    let reply = client::call(
        endpoint,
        &user(),
        "RunInstances",
        &[
            ("ImageId", IMAGE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "batch"),
            ("TagSpecification.1.Tag.1.Value", tag),
        ],
    )
    .await
    .ok()?;
    (reply.status == 200).then(|| items(&reply.body, "instancesSet")[0]["instanceId"].clone())
}

/// What the test created and was answered for, with when.
#[derive(Default)]
struct Answered {
    instances: Vec<(Instant, String, String)>,
}

/// Creates resources, runs load while `admin backup` runs, and answers the
/// backup file, what was answered before the backup began, the key pair
/// and group names.
async fn back_up_under_load(
    gateway: &GatewayProcess,
    folder: &Path,
) -> (std::path::PathBuf, Vec<(String, String)>) {
    let endpoint = gateway.endpoint.clone();
    let key = client::call(
        &endpoint,
        &user(),
        "CreateKeyPair",
        &[("KeyName", "before-backup")],
    )
    .await
    .unwrap();
    assert_eq!(key.status, 200, "{}", key.body);
    let group = client::call(
        &endpoint,
        &user(),
        "CreateSecurityGroup",
        &[("GroupName", "web"), ("GroupDescription", "web servers")],
    )
    .await
    .unwrap();
    assert_eq!(group.status, 200, "{}", group.body);
    let answered = Arc::new(Mutex::new(Answered::default()));
    for n in 0..5 {
        let tag = format!("first-{n}");
        let id = launch(&endpoint, &tag).await.expect("launch");
        answered
            .lock()
            .unwrap()
            .instances
            .push((Instant::now(), id, tag));
    }
    // Load: two clients launching (bounded: 10 launches each) until told.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for client_number in 0..2 {
        let (endpoint, answered, stop) = (endpoint.clone(), answered.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            for n in 0..10 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let tag = format!("load-{client_number}-{n}");
                if let Some(id) = launch(&endpoint, &tag).await {
                    answered
                        .lock()
                        .unwrap()
                        .instances
                        .push((Instant::now(), id, tag));
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let file = folder.join("state.backup");
    let began = Instant::now();
    let output = {
        let endpoint = endpoint.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            admin_cli(&endpoint, &["backup", file.to_str().unwrap()])
        })
        .await
        .unwrap()
    };
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("written to"), "{said}");
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds secrets");
    }
    let before: Vec<(String, String)> = answered
        .lock()
        .unwrap()
        .instances
        .iter()
        .filter(|(at, _, _)| *at < began)
        .map(|(_, id, tag)| (id.clone(), tag.clone()))
        .collect();
    assert!(
        before.len() > 5,
        "the load answered launches before the backup began"
    );
    (file, before)
}

/// The restored gateway answers everything answered before the backup
/// began, and its reservations match its instances.
async fn check_restored(restored: &GatewayProcess, before: &[(String, String)]) {
    let endpoint = &restored.endpoint;
    let mut params: Vec<(String, String)> = Vec::new();
    for (n, (id, _)) in before.iter().enumerate() {
        params.push((format!("InstanceId.{}", n + 1), id.clone()));
    }
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let described = client::call(endpoint, &user(), "DescribeInstances", &refs)
        .await
        .unwrap();
    assert_eq!(described.status, 200, "{}", described.body);
    for (id, tag) in before {
        assert!(described.body.contains(id.as_str()), "{id} lost");
        assert!(
            described.body.contains(&format!("<value>{tag}</value>")),
            "{id}'s tag lost"
        );
    }
    let keys = client::call(
        endpoint,
        &user(),
        "DescribeKeyPairs",
        &[("KeyName.1", "before-backup")],
    )
    .await
    .unwrap();
    assert_eq!(keys.status, 200, "{}", keys.body);
    let groups = client::call(
        endpoint,
        &user(),
        "DescribeSecurityGroups",
        &[("GroupName.1", "web")],
    )
    .await
    .unwrap();
    assert_eq!(groups.status, 200, "{}", groups.body);

    // Every instance the restored gateway has (some launched during the
    // backup may be there too) holds what its host reserves, no more.
    let all = client::call(endpoint, &user(), "DescribeInstances", &[])
        .await
        .unwrap();
    let holding = all
        .body
        .split("<instanceState>")
        .skip(1)
        .filter(|rest| {
            let name = text_of(rest, "name").unwrap_or_default();
            name == "pending" || name == "running"
        })
        .count() as u32;
    let hosts = client::call(endpoint, &admin(), "AdminDescribeHosts", &[])
        .await
        .unwrap();
    let reserved: u32 = items(&hosts.body, "hostSet")
        .iter()
        .map(|h| h["vcpusUsed"].parse::<u32>().unwrap())
        .sum();
    assert_eq!(reserved, holding * 2, "reservations match the instances");

    // It takes writes: a launch succeeds and is listed, tagged.
    let id = launch(endpoint, "after-restore")
        .await
        .expect("a launch after the restore");
    let listed = client::call(
        endpoint,
        &user(),
        "DescribeInstances",
        &[("InstanceId.1", id.as_str())],
    )
    .await
    .unwrap();
    assert!(
        listed.body.contains("<value>after-restore</value>"),
        "{}",
        listed.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_everything_answered_before_it() {
    let folder = tempfile::tempdir().unwrap();
    let text = test_config_text(&folder.path().join("data"), StorageBackend::Sled);
    let gateway = start_gateway(folder.path(), "gateway", text);
    let (file, before) = back_up_under_load(&gateway, folder.path()).await;

    // A user's key cannot take one.
    let refused = client::call(&gateway.endpoint, &user(), "AdminExportBackup", &[])
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(
        text_of(&refused.body, "Code").unwrap(),
        "UnauthorizedOperation"
    );

    let restored_dir = folder.path().join("restored");
    // What a restore interrupted by a crash leaves is cleared, not used.
    std::fs::create_dir_all(restored_dir.join("db.restoring")).unwrap();
    std::fs::write(restored_dir.join("db.restoring/junk"), b"half").unwrap();
    let restore = run_restore(&file, &restored_dir);
    assert!(restore.status.success(), "{restore:?}");
    assert!(!restored_dir.join("db.restoring").exists());
    // Never over an existing database.
    let again = run_restore(&file, &restored_dir);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // A damaged file is refused whole.
    let damaged = folder.path().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    std::fs::write(&damaged, bytes).unwrap();
    let refused = run_restore(&damaged, &folder.path().join("never"));
    assert!(!refused.status.success());
    assert!(!folder.path().join("never").join("db").exists());

    drop(gateway);
    let text = test_config_text(&restored_dir, StorageBackend::Sled);
    let restored = start_gateway(folder.path(), "restored", text);
    check_restored(&restored, &before).await;
}

/// On etcd the same command backs up through the gateway (its copy caught
/// up with the cluster), and restores into a sled folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_through_a_gateway_on_etcd_restores_into_sled() {
    let Some(binary) = etcd_binary("a_backup_through_a_gateway_on_etcd_restores_into_sled") else {
        return;
    };
    let cluster = EtcdCluster::start(&binary, 1);
    let folder = tempfile::tempdir().unwrap();
    let text = test_config_text(&folder.path().join("data"), StorageBackend::Etcd);
    let first_table = text.find("\n[").unwrap() + 1;
    let text = format!(
        "{}[etcd]\nendpoints = [\"{}\"]\nprefix = \"backup-test/\"\nmax_txn_ops = 128\n\n{}",
        &text[..first_table],
        cluster.endpoints()[0],
        &text[first_table..]
    );
    let gateway = start_gateway(folder.path(), "gateway", text);
    let (file, before) = back_up_under_load(&gateway, folder.path()).await;
    drop(gateway);
    drop(cluster);
    let restored_dir = folder.path().join("restored");
    let restore = run_restore(&file, &restored_dir);
    assert!(restore.status.success(), "{restore:?}");
    let restored = start_gateway(
        folder.path(),
        "restored",
        test_config_text(&restored_dir, StorageBackend::Sled),
    );
    check_restored(&restored, &before).await;
}
