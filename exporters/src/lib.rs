//! Every way data leaves Millwatch. Depends on nothing in the collector: it defines its own input types.

pub mod http;
pub mod notify;
pub mod prometheus;
pub mod remote_write;
pub mod units;
