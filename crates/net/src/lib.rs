//! onedoor-net: tokio shells around onedoor-proto (to be written).
