//! Per-IP connection rate limiting (stub: to be written).
