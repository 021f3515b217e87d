//! Opening data written by the release before the store contract.
//!
//! That release kept an instance's status inside its record (version 1)
//! and its launch order, held addresses and schedule in memory only. At
//! start, before anything is served, each such instance is split into spec
//! and status and gets its order, address and schedule records; tokens
//! already counting down get their schedule entry. Usage records missing
//! are counted from the listings the first time they are needed (`usage`),
//! and hosts get their `host_usage` from `services`.

use super::instances::{
    insert, schedule_key, ClientTokenRecord, Due, Instance, InstanceStatus, CLIENT_TOKENS,
    INSTANCES, INSTANCE_STATUS, SCHEDULE,
};
use super::Compute;
use crate::error::ApiResult;

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
}
