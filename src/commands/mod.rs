//! One module per command family, each a thin shell over dydis-core (or kernel-ext): parse, call, print, write.
//! No command module imports another (a test checks it); what two families share is in `crate::common`.
pub mod bench;
pub mod cldis;
pub mod data;
pub mod env;
pub mod eval;
pub mod generate;
pub mod quickstart;
pub mod study;
pub mod train;
pub mod viz;
