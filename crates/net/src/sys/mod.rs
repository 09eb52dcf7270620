//! What the OS is asked for, in one place per concern.

pub mod limits;
pub mod listen;
pub mod original_dst;
pub mod privileges;
#[cfg(target_os = "linux")]
pub mod splice;
