//! Gateway administration actions (not part of EC2; admin accounts only).
//!
//! Operators manage compute hosts and credentials of the running server
//! through the same signed query protocol EC2 clients use, so the
//! `ec2-gateway admin` CLI (or any SigV4 client) can drive them: list hosts
//! with zone, state and heartbeat age; add, remove, enable and disable a host;
//! heartbeat an external host; create, list and deactivate access keys.
//! Their output shapes are described in `schemas/gateway-admin.json`, in the
//! same format as the EC2 model, and checked the same way.

use super::Context;
use crate::compute::accounts::AccessKey;
use crate::compute::services::{NewHost, ServiceRecord};
use crate::error::ApiResult;
use crate::protocol::xml::{ReturnTrue, XmlOutput, XmlWriter};
use crate::protocol::Params;
use chrono::{DateTime, Duration, Utc};

/// A host with what its XML item needs.
#[derive(Debug)]
pub struct HostView {
    pub record: ServiceRecord,
    pub now: DateTime<Utc>,
    pub liveness_window: Duration,
}

impl HostView {
    pub(super) fn new(record: ServiceRecord, context: &Context<'_>) -> Self {
        Self {
            record,
            now: context.compute.clock().now(),
            liveness_window: context.compute.services().liveness_window(),
        }
    }

    pub(super) fn write_item(&self, xml: &mut XmlWriter) {
        let r = &self.record;
        xml.element("hostName", &r.host);
        xml.element("binary", &r.binary);
        xml.element("availabilityZone", &r.availability_zone);
        xml.element("status", if r.disabled { "disabled" } else { "enabled" });
        xml.optional("disabledReason", r.disabled_reason.as_deref());
        xml.boolean("alive", r.is_alive(self.now, self.liveness_window));
        if let (Some(beat), Some(age)) = (r.last_heartbeat, r.heartbeat_age(self.now)) {
            xml.timestamp("lastHeartbeat", beat);
            xml.number("heartbeatAgeSeconds", age.num_seconds().max(0));
        }
        xml.number("vcpus", r.vcpus);
        xml.number("vcpusUsed", r.vcpus_used);
        xml.number("memoryMib", r.memory_mib);
        xml.number("memoryMibUsed", r.memory_mib_used);
        xml.boolean("simulated", r.simulated);
        if let Some(agent) = &r.agent {
            xml.element("agentAddress", &agent.address);
            xml.element("agentVersion", &agent.version);
        }
    }
}

#[derive(Debug)]
pub struct AdminDescribeHosts;

impl AdminDescribeHosts {
    pub fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<HostList> {
        let hosts = context
            .compute
            .services()
            .hosts()
            .await?
            .into_iter()
            .map(|r| HostView::new(r, context))
            .collect();
        Ok(HostList { hosts })
    }
}

#[derive(Debug)]
pub struct HostList {
    hosts: Vec<HostView>,
}

impl XmlOutput for HostList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("hostSet", &self.hosts, |xml, host| host.write_item(xml));
    }
}

#[derive(Debug)]
pub struct AdminAddHost {
    pub host: NewHost,
}

impl AdminAddHost {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let required_number = |name: &str| -> ApiResult<u64> {
            params
                .number(name)?
                .ok_or_else(|| crate::error::ApiError::MissingParameter(name.into()))
        };
        Ok(Self {
            host: NewHost {
                name: params.required("HostName")?,
                availability_zone: params.required("AvailabilityZone")?,
                vcpus: u32::try_from(required_number("Vcpus")?)
                    .map_err(|_| crate::error::ApiError::invalid_value("Vcpus is too large"))?,
                memory_mib: required_number("MemoryMib")?,
                simulated: params.boolean("Simulated")?.unwrap_or(true),
            },
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<AddedHost> {
        let record = context
            .compute
            .services()
            .add_host(self.host, context.compute.clock().now())
            .await?;
        // A new zone gives every account a default subnet in it.
        context.compute.provision_all_defaults().await?;
        Ok(AddedHost(HostView::new(record, context)))
    }
}

#[derive(Debug)]
pub struct AddedHost(HostView);

impl XmlOutput for AddedHost {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("host", |xml| self.0.write_item(xml));
    }
}

#[derive(Debug)]
pub struct AdminRemoveHost {
    pub host_name: String,
}

impl AdminRemoveHost {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            host_name: params.required("HostName")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .services()
            .remove_host(&self.host_name)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct AdminEnableHost {
    pub host_name: String,
}

impl AdminEnableHost {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            host_name: params.required("HostName")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .services()
            .set_disabled(&self.host_name, false, None)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct AdminDisableHost {
    pub host_name: String,
    pub reason: Option<String>,
}

impl AdminDisableHost {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            host_name: params.required("HostName")?,
            reason: params.optional("Reason"),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .services()
            .set_disabled(&self.host_name, true, self.reason)
            .await?;
        Ok(ReturnTrue)
    }
}

#[derive(Debug)]
pub struct AdminHostHeartbeat {
    pub host_name: String,
}

impl AdminHostHeartbeat {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            host_name: params.required("HostName")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .services()
            .heartbeat(&self.host_name, context.compute.clock().now())
            .await?;
        Ok(ReturnTrue)
    }
}

/// Writes an access key's public fields (never the secret).
fn write_key_fields(xml: &mut XmlWriter, key: &AccessKey, admin: bool) {
    xml.element("accessKeyId", &key.access_key_id);
    xml.element("accountId", &key.account_id);
    xml.element("userName", &key.user_name);
    xml.element("status", if key.active { "Active" } else { "Inactive" });
    xml.boolean("admin", admin);
    xml.timestamp("createTime", key.created_at);
    xml.optional("agentHost", key.agent_host.as_deref());
}

#[derive(Debug)]
pub struct AdminCreateAccessKey {
    pub account_id: String,
    pub account_name: Option<String>,
    pub admin: Option<bool>,
}

impl AdminCreateAccessKey {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            account_id: params.required("AccountId")?,
            account_name: params.optional("AccountName"),
            admin: params.boolean("Admin")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<CreatedKey> {
        let accounts = &context.compute.accounts();
        let key = accounts
            .create_access_key(
                &self.account_id,
                self.account_name.as_deref(),
                self.admin,
                context.compute.clock().now(),
            )
            .await?;
        context.compute.provision_defaults(&key.account_id).await?;
        let admin = accounts
            .account(&key.account_id)
            .await
            .is_some_and(|a| a.admin);
        Ok(CreatedKey { key, admin })
    }
}

/// A new key, secret included: the only time the secret is ever sent.
#[derive(Debug)]
pub struct CreatedKey {
    key: AccessKey,
    admin: bool,
}

impl CreatedKey {
    pub(super) fn new(key: AccessKey, admin: bool) -> Self {
        Self { key, admin }
    }
}

impl XmlOutput for CreatedKey {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.nested("accessKey", |xml| {
            write_key_fields(xml, &self.key, self.admin);
            xml.element("secretAccessKey", self.key.secret.expose());
        });
    }
}

#[derive(Debug)]
pub struct AdminDescribeAccessKeys {
    pub account_id: Option<String>,
}

impl AdminDescribeAccessKeys {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            account_id: params.optional("AccountId"),
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<KeyList> {
        let accounts = &context.compute.accounts();
        let mut keys = Vec::new();
        for key in accounts.access_keys(self.account_id.as_deref()).await? {
            let admin = accounts
                .account(&key.account_id)
                .await
                .is_some_and(|a| a.admin);
            keys.push((key, admin));
        }
        Ok(KeyList { keys })
    }
}

#[derive(Debug)]
pub struct KeyList {
    keys: Vec<(AccessKey, bool)>,
}

impl XmlOutput for KeyList {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.list("accessKeySet", &self.keys, |xml, (key, admin)| {
            write_key_fields(xml, key, *admin)
        });
    }
}

#[derive(Debug)]
pub struct AdminDeactivateAccessKey {
    pub access_key_id: String,
}

impl AdminDeactivateAccessKey {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        Ok(Self {
            access_key_id: params.required("AccessKeyId")?,
        })
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ReturnTrue> {
        context
            .compute
            .accounts()
            .deactivate(&self.access_key_id)
            .await?;
        Ok(ReturnTrue)
    }
}

/// AdminExportBackup: the whole store at one revision, as a backup file
/// (see [`crate::backup`]), base64 in the answer.
#[derive(Debug)]
pub struct AdminExportBackup;

impl AdminExportBackup {
    pub fn from_params(_: &Params) -> ApiResult<Self> {
        Ok(Self)
    }

    pub async fn execute(self, context: &Context<'_>) -> ApiResult<ExportedBackup> {
        let store = context.compute.store().clone();
        let region = context.compute.region().name.clone();
        let now = context.compute.clock().now();
        let runtime = tokio::runtime::Handle::current();
        // Off the runtime's workers: the pass over the data must not hold
        // up other requests.
        let (revision, entries, file) = tokio::task::spawn_blocking(move || {
            let snapshot = runtime.block_on(store.backend().snapshot())?;
            let file = crate::backup::encode(&snapshot, &region, now);
            Ok::<_, crate::store::StoreError>((snapshot.revision, snapshot.entries.len(), file))
        })
        .await
        .map_err(|_| crate::error::ApiError::InternalError)??;
        tracing::info!(revision, entries, bytes = file.len(), "backup exported");
        Ok(ExportedBackup {
            revision,
            entries,
            file,
        })
    }
}

/// The backup file, written into the answer as base64 directly (no copy
/// of it in between), into a buffer sized for it up front: the answer of
/// a large store is the gateway's largest allocation, and a growing
/// buffer would hold two copies at its last doubling.
#[derive(Debug)]
pub struct ExportedBackup {
    revision: u64,
    entries: usize,
    file: Vec<u8>,
}

impl XmlOutput for ExportedBackup {
    fn write_xml(&self, xml: &mut XmlWriter) {
        xml.number("revision", self.revision);
        xml.number("entryCount", self.entries);
        xml.base64("backup", &self.file);
    }

    fn size_hint(&self) -> usize {
        self.file.len().div_ceil(3) * 4 + 1024
    }
}
