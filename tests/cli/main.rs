//! amictl's integration tests: the built binary against moto's EC2 server (see tests/support).
//! One test binary, so the suite links the SDK once and shares its moto servers.

#[path = "../support/mod.rs"]
mod support;

mod ci;
mod cleanup;
mod copy;
mod create;
mod deregister;
mod describe;
mod docs;
mod exit_codes;
mod global;
mod org;
mod permissions;
mod policy;
mod publish;
mod recycle_bin;
mod regions;
mod reliability;
mod shared;
mod stages;
mod tables;
mod usage;
