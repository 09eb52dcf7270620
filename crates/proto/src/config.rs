//! The `serve` configuration (stub: to be written).
