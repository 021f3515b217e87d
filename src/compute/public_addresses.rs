//! The public IPv4 address EC2 gives an instance launched into a subnet
//! with `MapPublicIpOnLaunch` (every default subnet's default), or with
//! `AssociatePublicIpAddress` on its primary interface.
//!
//! As in EC2, the address comes from the provider's pool (here
//! `public_ip_pool`, `100.64.0.0/10` by default), not from the account's
//! Elastic IPs; it is let go when the instance stops or terminates, and a
//! stopped instance gets a new one when it starts. An Elastic IP
//! associated with the instance's primary address shows instead of it
//! (the public address is kept meanwhile). Each address is held by its
//! `public_ips/<ip>` key, shared with the Elastic IP pool and written on
//! the condition that it is absent, so two gateways never hand one out
//! twice; the search starts at a point drawn from the instance's private
//! address and the time of the launch or start (both the same on every
//! attempt of one operation, so an attempt that runs again reads the same
//! keys), so launches do not contend on a shared counter.

use super::addresses::{AddressPool, PUBLIC_IPS};
use super::instances::Instance;
use super::operation::Tx;
use crate::error::{codes, ApiError, ApiResult};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// How many taken addresses a search passes before giving up.
const MAX_PROBES: u32 = 4096;

/// Takes a free address of `pool` for `instance` in `tx`, at `now`.
fn take(
    tx: &mut Tx<'_>,
    pool: &AddressPool,
    instance: &Instance,
    now: DateTime<Utc>,
) -> ApiResult<String> {
    let seed = format!(
        "{}/{}/{}/{}",
        instance.account_id,
        instance.address_pool(),
        instance.private_ip,
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    let digest = Sha256::digest(seed.as_bytes());
    let start = u64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]));
    for step in 0..MAX_PROBES.min(pool.size()) {
        let address = pool.nth(start + u64::from(step));
        if tx.get::<String>(PUBLIC_IPS, address.as_bytes())?.is_none() {
            tx.put(
                PUBLIC_IPS,
                address.as_bytes().to_vec(),
                &format!("instance/{}/{}", instance.account_id, instance.id),
            );
            return Ok(address);
        }
    }
    Err(ApiError::InsufficientCapacity {
        code: codes::INSUFFICIENT_ADDRESS_CAPACITY,
        message: "There are no free public IPv4 addresses in the pool".into(),
    })
}

/// Lets an instance's public address go in `tx` (it stops or terminates).
pub(super) fn release(tx: &mut Tx<'_>, instance: &mut Instance) {
    if let Some(address) = instance.public_ip.take() {
        tx.delete(PUBLIC_IPS, address.into_bytes());
    }
}

/// Gives an instance that asks for one, launching or starting at `now`,
/// a public address.
pub(super) fn renew(
    tx: &mut Tx<'_>,
    pool: &AddressPool,
    instance: &mut Instance,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if instance.assign_public_ip && instance.public_ip.is_none() {
        instance.public_ip = Some(take(tx, pool, instance, now)?);
    }
    Ok(())
}
