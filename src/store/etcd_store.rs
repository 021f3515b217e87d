//! The etcd backend (`storage = "etcd"`, cargo feature `etcd`): the
//! gateway's state in an etcd v3 cluster, so that several gateways share it.
//!
//! The store contract maps onto etcd one to one (../shared/design/scale-out.md,
//! §3): a value's version is its `mod_revision`; a [`Store::commit`] is one
//! etcd transaction whose compares are the expectations (`create_revision
//! == 0` for absent, `mod_revision == v` for a version) and whose success
//! branch is the write set. Its failure branch reads every expected key
//! (keys only), so a conflict names the keys that moved without another
//! round trip. Keys are `<prefix><tree>/<key>`: several deployments share
//! one cluster under their own prefixes.
//!
//! etcd's limits are kept here, not left to its error messages:
//! - a transaction carries at most `max_txn_ops` operations per branch (the
//!   cluster's `--max-txn-ops`, 128 by default): a larger commit is refused
//!   as a store error before it is sent (see [`Store::max_commit_ops`],
//!   which the launch path reads to trim a launch to what fits);
//! - a duplicate key in one transaction is refused by the contract already;
//! - scans are read in pages at the revision of their first page, so a
//!   listing of any size is one consistent snapshot and no answer exceeds
//!   the request size limits.
//!
//! Failures: a member that is down answers `Unavailable`; the call is sent
//! again at once (the client's balancer then picks another member), and
//! again with short pauses through a leader election (1-3 s measured here),
//! after which the error is a retryable one (`ServiceUnavailable`, 503). A
//! commit whose answer was lost (timeout, a connection cut after sending)
//! may have applied. Every commit therefore also puts a marker key of its
//! own, `<prefix>txn/<uuid>`, bound to a short-lived lease (so markers go
//! by themselves minutes later): before sending a commit again, the backend
//! reads its marker, and if it is there the commit applied, at the marker's
//! revision. Reading the written keys instead would be wrong both ways
//! (another writer may have changed them since; two commits may write the
//! same values). Sending it again is safe, since its compares refuse it
//! once anything it read has moved, and its marker is the same.
//!
//! Reads answer from this gateway's copy of the prefix, kept by a watch
//! ([`super::etcd_mirror`]); a request first waits until the copy reflects
//! the cluster's revision at its arrival ([`Store::catch_up`]), so a replica
//! reads what any other replica committed before: read-your-writes across
//! gateways. Every commit is durable on a quorum when it answers, and is
//! answered once the copy shows it; `flush` has nothing to do.

use super::etcd_mirror::Mirror;
use super::{
    check_unique_keys, Committed, Entry, Expect, Expectation, Store, StoreCall, StoreError,
    StoreResult, VersionedValue, WriteBatch, WriteOp,
};
use crate::config::EtcdConfig;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use std::time::{Duration, Instant};

/// How long a commit marker's lease lives, and how often a new one is
/// taken: a marker is readable for at least `MARKER_TTL - MARKER_RENEWAL`
/// after its commit, far longer than any settling takes.
const MARKER_TTL: Duration = Duration::from_secs(300);
const MARKER_RENEWAL: Duration = Duration::from_secs(60);

/// Largest answer the client accepts (a page of large records, or a watch
/// answer carrying a backlog of large transactions).
pub(super) const MAX_DECODING_BYTES: usize = 64 << 20;

/// Pauses between sends of a call that met an unavailable member: at once,
/// then through a leader election (about 8 s in all: an election takes 1-3 s
/// here, longer on a loaded machine).
pub(super) const RETRY_PAUSES_MS: [u64; 10] = [0, 0, 50, 100, 250, 500, 1000, 1500, 2000, 2500];

/// etcd-backed [`Store`].
pub struct EtcdStore {
    client: Client,
    /// The same cluster without a request timeout, for campaigns.
    elections: Client,
    kv: KvClient,
    prefix: Vec<u8>,
    max_txn_ops: usize,
    lease_ttl_secs: i64,
    /// The lease commit markers are bound to, and when it was granted.
    marker_lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
    /// What reads answer from (see [`super::etcd_mirror`]).
    mirror: Mirror,
}

/// What an etcd call's failure means for a retry.
enum Failure {
    /// No member could take it now: send it again.
    Unavailable(String),
    /// It may or may not have been applied (a timeout, a cut connection).
    Unknown(String),
    /// Refused for good (permissions, a malformed request, a limit).
    Refused(String),
}

fn classify(error: etcd_client::Error) -> Failure {
    use tonic::Code;
    match error {
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::Aborted | Code::ResourceExhausted => {
                Failure::Unavailable(status.message().to_string())
            }
            Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal => {
                Failure::Unknown(status.message().to_string())
            }
            _ => Failure::Refused(format!("{:?}: {}", status.code(), status.message())),
        },
        etcd_client::Error::TransportError(e) => Failure::Unavailable(e.to_string()),
        etcd_client::Error::IoError(e) => Failure::Unavailable(e.to_string()),
        other => Failure::Refused(other.to_string()),
    }
}

impl EtcdStore {
    /// Connects to the cluster `config` names (nothing is read yet: a
    /// member that is down now is simply tried later).
    pub async fn connect(config: &EtcdConfig) -> StoreResult<Self> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            // A member cut off from the quorum refuses rather than answering
            // (or, for the copy's watch, staying silent) as if all was well.
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.with_user(user.clone(), password.expose().to_string());
        }
        if let Some(ca) = &config.ca_file {
            let read = |path: &std::path::Path| {
                std::fs::read(path)
                    .map_err(|e| StoreError(format!("etcd: cannot read {}: {e}", path.display())))
            };
            let mut tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            options = options.with_tls(tls);
        }
        // A campaign waits as long as another process leads: its client
        // has no request timeout; every other call has one.
        let elections = Client::connect(&config.endpoints, Some(options.clone()))
            .await
            .map_err(|e| StoreError(format!("etcd: cannot connect: {e}")))?;
        let options = options.with_timeout(Duration::from_millis(config.request_timeout_ms));
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| StoreError(format!("etcd: cannot connect: {e}")))?;
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_DECODING_BYTES);
        let prefix = config.prefix.as_bytes().to_vec();
        let mirror = Mirror::start(&client, kv.clone(), &prefix).await?;
        Ok(Self {
            client,
            elections,
            kv,
            prefix,
            max_txn_ops: config.max_txn_ops,
            lease_ttl_secs: config.lease_ttl_secs.max(2) as i64,
            marker_lease: tokio::sync::Mutex::new(None),
            mirror,
        })
    }

    /// The lease for new commit markers: taken anew every
    /// [`MARKER_RENEWAL`], never kept alive (it expires with its markers).
    async fn marker_lease(&self) -> StoreResult<i64> {
        let mut current = self.marker_lease.lock().await;
        if let Some((lease, granted)) = *current {
            if granted.elapsed() < MARKER_RENEWAL {
                return Ok(lease);
            }
        }
        let granted = Instant::now();
        let mut last = String::new();
        for pause in RETRY_PAUSES_MS {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let mut leases = self.client.lease_client();
            match leases.grant(MARKER_TTL.as_secs() as i64, None).await {
                Ok(answer) => {
                    *current = Some((answer.id(), granted));
                    return Ok(answer.id());
                }
                Err(error) => match classify(error) {
                    Failure::Refused(message) => {
                        return Err(StoreError(format!("etcd lease: {message}")))
                    }
                    Failure::Unavailable(message) | Failure::Unknown(message) => last = message,
                },
            }
        }
        Err(StoreError::unavailable(format!("etcd lease: {last}")))
    }

    /// Grants a lease, keeps it alive from a task of its own, and campaigns
    /// for `name` with it (etcd's election API): answers once this process
    /// leads. The keeper renews at a third of the TTL; when a renewal fails
    /// or finds the lease gone, leadership is lost.
    async fn lead(&self, name: &str, candidate: &str) -> StoreResult<super::Leadership> {
        let failed = |e: etcd_client::Error| StoreError::unavailable(format!("etcd election: {e}"));
        let mut leases = self.client.lease_client();
        let lease = leases
            .grant(self.lease_ttl_secs, None)
            .await
            .map_err(failed)?
            .id();
        let (mut keeper, mut answers) = leases.keep_alive(lease).await.map_err(failed)?;
        let (leading, still_leading) = tokio::sync::watch::channel(true);
        let period = Duration::from_millis(self.lease_ttl_secs as u64 * 1000 / 3);
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                // A renewal that does not answer within the period counts
                // as failed: two periods more and the lease may be gone.
                let renewal = async {
                    keeper.keep_alive().await.is_ok()
                        && matches!(answers.message().await, Ok(Some(answer)) if answer.ttl() > 0)
                };
                let renewed = tokio::time::timeout(period, renewal).await.unwrap_or(false);
                if !renewed {
                    let _ = leading.send(false);
                    return;
                }
            }
        });
        let keeper = LeaseGuard {
            renewing,
            leases: self.client.lease_client(),
            lease,
        };
        let mut key = self.prefix.clone();
        key.extend_from_slice(b"election/");
        key.extend_from_slice(name.as_bytes());
        self.elections
            .election_client()
            .campaign(key, candidate.as_bytes().to_vec(), lease)
            .await
            .map_err(failed)?;
        Ok(super::Leadership::new(still_leading, Box::new(keeper)))
    }

    /// The client, for what else a gateway does on etcd (election, leases).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The key prefix of this deployment.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn full_key(&self, tree: &str, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + tree.len() + 1 + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(tree.as_bytes());
        full.push(b'/');
        full.extend_from_slice(key);
        full
    }

    /// Runs `call` until it answers, sending it again while members are
    /// unavailable (see the module documentation).
    async fn with_retries<T, F, Fut>(&self, what: &str, mut call: F) -> StoreResult<T>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = String::new();
        for pause in RETRY_PAUSES_MS {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            match call(self.kv.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(error) => match classify(error) {
                    Failure::Unavailable(message) | Failure::Unknown(message) => {
                        tracing::debug!(what, %message, "etcd call failed: sending it again");
                        last = message;
                    }
                    Failure::Refused(message) => {
                        return Err(StoreError(format!("etcd {what}: {message}")))
                    }
                },
            }
        }
        Err(StoreError::unavailable(format!("etcd {what}: {last}")))
    }

    fn compare(&self, expectation: &Expectation) -> Option<Compare> {
        let key = self.full_key(expectation.tree, &expectation.key);
        match expectation.expect {
            Expect::Any => None,
            Expect::Absent => Some(Compare::create_revision(key, CompareOp::Equal, 0)),
            Expect::At(version) => {
                Some(Compare::mod_revision(key, CompareOp::Equal, version as i64))
            }
        }
    }

    async fn commit_remote(
        &self,
        expectations: &[Expectation],
        writes: &WriteBatch,
    ) -> StoreResult<Committed> {
        check_unique_keys(writes)?;
        let checked: Vec<&Expectation> = expectations
            .iter()
            .filter(|e| e.expect != Expect::Any)
            .collect();
        // The write set, and the commit's marker.
        if checked.len() > self.max_txn_ops || writes.ops.len() + 1 > self.max_txn_ops {
            return Err(StoreError::too_large(format!(
                "a commit of {} writes and {} expectations exceeds etcd's max_txn_ops ({})",
                writes.ops.len(),
                checked.len(),
                self.max_txn_ops
            )));
        }
        let compares: Vec<Compare> = checked.iter().filter_map(|e| self.compare(e)).collect();
        let marker = self.full_key("txn", uuid::Uuid::new_v4().simple().to_string().as_bytes());
        let lease = self.marker_lease().await?;
        let mut success: Vec<TxnOp> = writes
            .ops
            .iter()
            .map(|op| match op {
                WriteOp::Put { tree, key, value } => {
                    TxnOp::put(self.full_key(tree, key), value.clone(), None)
                }
                WriteOp::Delete { tree, key } => TxnOp::delete(self.full_key(tree, key), None),
            })
            .collect();
        success.push(TxnOp::put(
            marker.clone(),
            Vec::new(),
            Some(PutOptions::new().with_lease(lease)),
        ));
        let failure: Vec<TxnOp> = checked
            .iter()
            .map(|e| {
                TxnOp::get(
                    self.full_key(e.tree, &e.key),
                    Some(GetOptions::new().with_keys_only()),
                )
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(success).or_else(failure);
        let mut last = String::new();
        for (round, pause) in RETRY_PAUSES_MS.into_iter().enumerate() {
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            let mut kv = self.kv.clone();
            match kv.txn(txn.clone()).await {
                Ok(answer) => {
                    let revision = answer.header().map_or(0, |h| h.revision()) as u64;
                    if answer.succeeded() {
                        return Ok(self.applied(revision).await);
                    }
                    if round > 0 {
                        // An earlier send whose answer was lost may be the
                        // reason the compares fail now.
                        if let Some(version) = self.applied_earlier(&marker).await? {
                            return Ok(self.applied(version).await);
                        }
                    }
                    // The attempt that follows reads what beat this one.
                    self.mirror.reach(revision).await?;
                    return Ok(Committed::Conflict {
                        keys: conflicting_keys(&checked, &answer.op_responses()),
                    });
                }
                Err(error) => match classify(error) {
                    Failure::Refused(message) => {
                        return Err(StoreError(format!("etcd commit: {message}")))
                    }
                    Failure::Unavailable(message) | Failure::Unknown(message) => {
                        tracing::debug!(%message, "etcd commit failed: settling it");
                        last = message;
                        if let Some(version) = self.applied_earlier(&marker).await? {
                            return Ok(self.applied(version).await);
                        }
                    }
                },
            }
        }
        Err(StoreError::unavailable(format!("etcd commit: {last}")))
    }

    /// A commit applied at `version`, answered once this gateway's copy
    /// shows it (what the request reads next includes its own writes). The
    /// commit stands whatever the copy does: a copy that cannot catch up
    /// makes the next request's reads wait, not this answer wrong.
    async fn applied(&self, version: u64) -> Committed {
        if let Err(error) = self.mirror.reach(version).await {
            tracing::warn!(%error, version, "etcd: a commit applied, but the copy lags");
        }
        Committed::Applied { version }
    }

    /// The revision at which the commit with `marker` was applied, if it
    /// was (its marker is there).
    async fn applied_earlier(&self, marker: &[u8]) -> StoreResult<Option<u64>> {
        let marker = marker.to_vec();
        let mut answer = self
            .with_retries("settle", |mut kv| {
                let marker = marker.clone();
                async move { kv.get(marker, None).await }
            })
            .await?;
        Ok(answer.take_kvs().first().map(|kv| kv.mod_revision() as u64))
    }
}

/// Stops renewing a leadership's lease, and revokes it so that another
/// process may lead at once rather than after the TTL.
struct LeaseGuard {
    renewing: tokio::task::JoinHandle<()>,
    leases: etcd_client::LeaseClient,
    lease: i64,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewing.abort();
        let (mut leases, lease) = (self.leases.clone(), self.lease);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = leases.revoke(lease).await;
            });
        }
    }
}

/// The keys of `checked` whose current revisions (the failure branch's
/// keys-only reads, in the same order) do not meet their expectations.
fn conflicting_keys(
    checked: &[&Expectation],
    responses: &[TxnOpResponse],
) -> Vec<(String, Vec<u8>)> {
    checked
        .iter()
        .zip(responses)
        .filter(|(expectation, response)| {
            let current = match response {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision() as u64),
                _ => None,
            };
            !super::memory::meets(expectation.expect, current)
        })
        .map(|(expectation, _)| (expectation.tree.to_string(), expectation.key.clone()))
        .collect()
}

/// The first key after every key that starts with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xFF: the range runs to the end of the key space.
    vec![0]
}

impl Store for EtcdStore {
    fn get_versioned<'a>(
        &'a self,
        tree: &'a str,
        key: &'a [u8],
    ) -> StoreCall<'a, Option<VersionedValue>> {
        StoreCall::ready(Ok(self.mirror.get(tree, key)))
    }

    fn version<'a>(&'a self, tree: &'a str, key: &'a [u8]) -> StoreCall<'a, Option<u64>> {
        StoreCall::ready(Ok(self.mirror.version(tree, key)))
    }

    fn commit<'a>(
        &'a self,
        expectations: &'a [Expectation],
        writes: &'a WriteBatch,
    ) -> StoreCall<'a, Committed> {
        StoreCall::waiting(self.commit_remote(expectations, writes))
    }

    fn scan<'a>(
        &'a self,
        tree: &'a str,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        limit: usize,
    ) -> StoreCall<'a, Vec<Entry>> {
        StoreCall::ready(Ok(self.mirror.scan(tree, prefix, after, limit)))
    }

    fn catch_up(&self) -> StoreCall<'_, ()> {
        StoreCall::waiting(self.mirror.catch_up())
    }

    fn answers_at_once(&self) -> bool {
        // Reads answer from the copy; only commits wait.
        true
    }

    fn shared(&self) -> bool {
        true
    }

    fn revision(&self) -> Option<u64> {
        Some(self.mirror.reflected())
    }

    fn snapshot(&self) -> StoreCall<'_, super::Snapshot> {
        StoreCall::waiting(self.mirror.snapshot())
    }

    fn flush(&self) -> StoreCall<'_, ()> {
        // A commit is on a quorum's disks when it answers.
        StoreCall::ready(Ok(()))
    }

    fn max_commit_ops(&self) -> Option<usize> {
        // One operation of each commit is its marker.
        Some(self.max_txn_ops - 1)
    }

    fn campaign<'a>(
        &'a self,
        name: &'a str,
        candidate: &'a str,
    ) -> Option<StoreCall<'a, super::Leadership>> {
        Some(StoreCall::waiting(self.lead(name, candidate)))
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"gw/instances/"), b"gw/instances0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
