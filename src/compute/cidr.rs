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

    /// The block's first address.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// How many addresses the block spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The block's last address.
    pub fn last(&self) -> u32 {
        (u64::from(self.base) + self.size() - 1) as u32
    }

    /// True when `other` lies wholly inside this block.
    pub fn contains(&self, other: &Ipv4Cidr) -> bool {
        other.base >= self.base && other.last() <= self.last()
    }

    /// True when the two blocks share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// True when `address` is in the block.
    pub fn holds(&self, address: u32) -> bool {
        address >= self.base && address <= self.last()
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
    fn blocks_contain_and_overlap() {
        let vpc = Ipv4Cidr::parse("10.0.0.0/16").unwrap();
        let low = Ipv4Cidr::parse("10.0.0.0/24").unwrap();
        let wide = Ipv4Cidr::parse("10.0.0.0/23").unwrap();
        let outside = Ipv4Cidr::parse("10.1.0.0/24").unwrap();
        assert!(vpc.contains(&low) && !vpc.contains(&outside));
        assert!(low.overlaps(&wide) && wide.overlaps(&low));
        assert!(!low.overlaps(&outside));
        assert_eq!(low.size(), 256);
        assert_eq!(
            std::net::Ipv4Addr::from(low.last()).to_string(),
            "10.0.0.255"
        );
        assert!(low.holds(low.base() + 255) && !low.holds(low.base() + 256));
        let everything = Ipv4Cidr::parse("0.0.0.0/0").unwrap();
        assert_eq!(everything.last(), u32::MAX);
    }

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
