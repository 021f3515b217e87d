//! IPv4 CIDR blocks as EC2 reads them for VPCs (and, next, subnets).
//!
//! A block is four decimal octets and a prefix length; EC2 takes a block
//! with host bits set to its canonical form (`100.68.0.18/18` is
//! `100.68.0.0/18`), so parsing does the same.

use std::fmt;
use std::net::Ipv4Addr;

/// A canonical IPv4 block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    base: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `a.b.c.d/n` (n from 0 to 32), host bits cleared; `None` when
    /// malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = text.split_once('/')?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        let address: Ipv4Addr = address.parse().ok()?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        Some(Self {
            base: u32::from(address) & mask,
            prefix,
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_and_made_canonical() {
        assert_eq!(
            Ipv4Cidr::parse("10.0.0.0/16").unwrap().to_string(),
            "10.0.0.0/16"
        );
        assert_eq!(
            Ipv4Cidr::parse("100.68.0.18/18").unwrap().to_string(),
            "100.68.0.0/18"
        );
        assert_eq!(Ipv4Cidr::parse("0.0.0.0/0").unwrap().prefix(), 0);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0/16",
            "10.0.0.256/16",
            "10.0.0.0/+8",
            "10.0.0.0/016",
            "a.b.c.d/16",
            " 10.0.0.0/16",
        ] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad}");
        }
    }
}
