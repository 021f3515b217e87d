//! Opening data written by the release before the store contract.
//!
//! That release kept an instance's status inside its record (version 1)
//! and its launch order, held addresses and schedule in memory only. At
//! start, before anything is served, each such instance is split into spec
//! and status and gets its order, address and schedule records; tokens
//! already counting down get their schedule entry. Usage records missing
//! are counted from the listings the first time they are needed (`usage`),
//! and hosts get their `host_usage` from `services`.
//!
//! Volumes attached before instance records listed their volumes (what
//! DescribeInstances' `blockDeviceMapping` reads) are added to their
//! instance's record once, at the first start of a release that lists
//! them (marker `meta/volume_links`).

use super::instances::{
    insert, schedule_key, ClientTokenRecord, Due, Instance, InstanceStatus, CLIENT_TOKENS,
    INSTANCES, INSTANCE_STATUS, SCHEDULE,
};
use super::Compute;
use crate::error::ApiResult;

/// Set once volumes attached before are listed in their instances.
const VOLUME_LINKS: &[u8] = b"volume_links";

/// The instance record version that moved the status out (later versions
/// only add fields, which decoding fills in).
const STATUS_SPLIT: u32 = 2;

impl Compute {
    /// Upgrades instances written by the release before the store contract
    /// (version 1: status inline, no launch-order, address or schedule
    /// records) to today's records; run at start, before serving. Each
    /// instance is one operation that re-reads it, so a second gateway
    /// upgrading at the same time does no harm. Returns how many changed.
    pub async fn upgrade_instances(&self) -> ApiResult<usize> {
        let mut upgraded = 0;
        for (key, value) in self
            .store
            .raw_scan(INSTANCES, b"", None, usize::MAX)
            .await?
        {
            if crate::store::version_of(&value)? >= STATUS_SPLIT {
                continue;
            }
            let done = super::operation::run(&self.store, false, |tx| {
                let Some(raw) = tx.get_raw(INSTANCES, &key)? else {
                    return Ok(false);
                };
                if crate::store::version_of(&raw)? >= STATUS_SPLIT {
                    return Ok(false);
                }
                let mut instance: Instance = crate::store::decode(&raw)?;
                // A status written since (by a newer gateway) wins.
                if let Some(status) = tx.get::<InstanceStatus>(INSTANCE_STATUS, &key)? {
                    instance.set_status(status);
                }
                insert(tx, &instance);
                if instance.is_live() {
                    super::launch::hold_private_ip(tx, &instance);
                }
                Ok(true)
            })
            .await?;
            upgraded += usize::from(done);
        }
        // Tokens already counting down (0.1.0 kept their expiry schedule in
        // memory only).
        for token in self
            .store
            .records::<ClientTokenRecord>(CLIENT_TOKENS, b"")
            .await?
        {
            if let Some(expiry) = token.expires_at {
                let entry = schedule_key(expiry, Due::Token, &token.account_id, &token.token);
                if self.store.raw(SCHEDULE, &entry).await?.is_none() {
                    super::operation::run(&self.store, false, |tx| {
                        tx.put(SCHEDULE, entry.clone(), &true);
                        Ok(())
                    })
                    .await?;
                }
            }
        }
        if upgraded > 0 {
            tracing::info!(instances = upgraded, "upgraded instance records");
        }
        Ok(upgraded)
    }

    /// Lists in each instance's record the volumes attached to it before
    /// records listed them (once per store; see the module).
    pub async fn link_attached_volumes(&self) -> ApiResult<usize> {
        if self.store.raw("meta", VOLUME_LINKS).await?.is_some() {
            return Ok(0);
        }
        let now = self.clock.now();
        let mut linked = 0;
        let mut failed = 0;
        for (key, value) in self
            .store
            .raw_scan(super::volumes::VOLUMES, b"", None, usize::MAX)
            .await?
        {
            // Only volumes attached now need a look.
            let attached = crate::store::decode::<super::volumes::Volume>(&value)
                .ok()
                .and_then(|v| v.attachment)
                .is_some_and(|a| a.detached_at.is_none_or(|at| at > now));
            if !attached {
                continue;
            }
            let done = super::operation::run(&self.store, false, |tx| {
                let Some(volume) =
                    tx.get::<super::volumes::Volume>(super::volumes::VOLUMES, &key)?
                else {
                    return Ok(false);
                };
                let Some(attachment) = volume.attachment.as_ref() else {
                    return Ok(false);
                };
                let Some(mut instance) = super::instances::load(
                    &self.instances,
                    tx,
                    &volume.account_id,
                    &attachment.instance_id,
                )?
                else {
                    return Ok(false);
                };
                if !instance.is_live()
                    || instance
                        .block_devices
                        .iter()
                        .any(|v| v.volume_id == volume.id)
                {
                    return Ok(false);
                }
                instance
                    .block_devices
                    .push(super::volumes::AttachedVolume::of(&volume.id, attachment));
                tx.put(INSTANCES, instance.key(), &instance);
                Ok(true)
            })
            .await;
            match done {
                Ok(done) => linked += usize::from(done),
                Err(error) => {
                    // Served meanwhile; the next start tries again.
                    tracing::warn!(%error, "could not list an attached volume in its instance");
                    failed += 1;
                }
            }
        }
        if failed == 0 {
            super::operation::run(&self.store, false, |tx| {
                tx.put("meta", VOLUME_LINKS.to_vec(), &true);
                Ok(())
            })
            .await?;
        }
        if linked > 0 {
            tracing::info!(
                volumes = linked,
                "listed attached volumes in their instances"
            );
        }
        Ok(linked)
    }
}
