//! The EC2 query protocol: parameters in, XML out.
//!
//! `params` turns a query string and a form body into one ordered parameter
//! map with typed accessors (`.N` lists, filters, booleans); `filters`
//! implements EC2's `Filter.N.Name`/`Filter.N.Value.M` matching with `*`/`?`
//! wildcards (compiled by `wildcard`); `xml` writes the success envelope and the error document.

pub mod filters;
pub mod params;
pub mod stream;
pub mod wildcard;
pub mod xml;

pub use filters::Filter;
pub use params::Params;
