//! EC2 resource ids: `i-`, `r-`, `sg-`, ... followed by 17 lower-case hex digits.
//!
//! New ids always have 17 digits; older 8-digit ids are still valid input.
//! A syntactically wrong id is `.Malformed`, a well-formed unknown one
//! `.NotFound`, so clients can tell a typo from a deleted resource.

use crate::config::is_resource_id;
use crate::error::ApiError;
use rand::Rng;

/// A fresh id with `prefix` (`"i"` gives `i-0123456789abcdef0`).
pub fn new_id(prefix: &str) -> String {
    let value: u128 = rand::thread_rng().gen();
    format!("{prefix}-{:017x}", value & ((1u128 << 68) - 1))
}

/// Checks the syntax of an id, answering `<code>.Malformed` when it is wrong.
pub fn check_id(id: &str, prefix: &str, code: &'static str) -> Result<(), ApiError> {
    if is_resource_id(id, prefix) {
        Ok(())
    } else {
        Err(ApiError::Malformed {
            code,
            message: format!("Invalid id: \"{id}\""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = new_id("i");
        assert_eq!(id.len(), 19);
        assert!(is_resource_id(&id, "i"));
        assert!(check_id("i-1234abcd", "i", "InvalidInstanceID.Malformed").is_ok());
        assert_eq!(
            check_id("i-XYZ", "i", "InvalidInstanceID.Malformed")
                .unwrap_err()
                .code(),
            "InvalidInstanceID.Malformed"
        );
        assert!(check_id("r-1234abcd", "i", "InvalidInstanceID.Malformed").is_err());
    }
}
