//! Persisted records: every value carries the schema version of its type,
//! and each type upgrades values written by an older release.
//!
//! A gateway must open the data folder of the release before it (EC2 does
//! not lose an instance because its software changed). Each record type says
//! which version it writes ([`Record::VERSION`]) and how to read every older
//! one ([`Record::upgrade`]); a value from a newer release is refused rather
//! than misread. The envelope is `{"v": <version>, "d": <record>}`.

use super::{StoreError, StoreResult};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// A type kept in the store.
pub trait Record: Serialize + DeserializeOwned {
    /// The schema version this release writes.
    const VERSION: u32 = 1;

    /// Reads a value written at an older `version` (below [`Record::VERSION`]).
    fn upgrade(version: u32, _data: serde_json::Value) -> StoreResult<Self> {
        Err(StoreError(format!(
            "no upgrade from version {version} of {}",
            std::any::type_name::<Self>()
        )))
    }
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    v: u32,
    d: &'a T,
}

#[derive(Deserialize)]
struct RawEnvelope {
    v: u32,
    d: serde_json::Value,
}

#[derive(Deserialize)]
struct CurrentEnvelope<T> {
    v: u32,
    d: T,
}

/// Encodes a record with its type's schema version.
pub fn encode<T: Record>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        v: T::VERSION,
        d: value,
    })
    .expect("records always serialise")
}

/// Decodes a record written by [`encode`] of this release or an older one.
pub fn decode<T: Record>(bytes: &[u8]) -> StoreResult<T> {
    // The common case first: the current version decodes in one pass.
    if let Ok(current) = serde_json::from_slice::<CurrentEnvelope<T>>(bytes) {
        if current.v == T::VERSION {
            return Ok(current.d);
        }
    }
    let raw: RawEnvelope = serde_json::from_slice(bytes)
        .map_err(|e| StoreError(format!("undecodable record: {e}")))?;
    match raw.v {
        v if v == T::VERSION => serde_json::from_value(raw.d)
            .map_err(|e| StoreError(format!("undecodable record: {e}"))),
        v if v < T::VERSION => T::upgrade(v, raw.d),
        v => Err(StoreError(format!(
            "record version {v} of {} is newer than this release reads ({})",
            std::any::type_name::<T>(),
            T::VERSION
        ))),
    }
}

/// The version a stored value was written at (for upgrade passes).
pub fn version_of(bytes: &[u8]) -> StoreResult<u32> {
    #[derive(Deserialize)]
    struct OnlyVersion {
        v: u32,
    }
    serde_json::from_slice::<OnlyVersion>(bytes)
        .map(|o| o.v)
        .map_err(|e| StoreError(format!("undecodable record: {e}")))
}

macro_rules! plain_records {
    ($($t:ty),* $(,)?) => { $(impl Record for $t {})* };
}

plain_records!(bool, u64, String, Vec<u8>, (String, String), (String, u32));

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Renamed {
        full_name: String,
    }

    impl Record for Renamed {
        const VERSION: u32 = 2;
        fn upgrade(version: u32, data: serde_json::Value) -> StoreResult<Self> {
            match version {
                1 => Ok(Renamed {
                    full_name: data["name"].as_str().unwrap_or_default().to_string(),
                }),
                _ => Err(StoreError("unknown".into())),
            }
        }
    }

    #[test]
    fn current_values_round_trip_and_old_ones_upgrade() {
        let value = Renamed {
            full_name: "web".into(),
        };
        assert_eq!(decode::<Renamed>(&encode(&value)).unwrap(), value);
        assert_eq!(version_of(&encode(&value)).unwrap(), 2);
        let old = br#"{"v":1,"d":{"name":"db"}}"#;
        assert_eq!(decode::<Renamed>(old).unwrap().full_name, "db");
    }

    #[test]
    fn values_from_a_newer_release_are_refused() {
        let newer = br#"{"v":3,"d":{"full_name":"x"}}"#;
        let error = decode::<Renamed>(newer).unwrap_err();
        assert!(error.0.contains("newer"), "{error}");
    }
}
