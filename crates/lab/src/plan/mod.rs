//! Plans as pure data, testable without a kernel: the address plan of an
//! instance and the router's ruleset for a policy.

pub mod addr;
pub mod ruleset;
