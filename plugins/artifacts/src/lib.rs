//! Paths of the compiled plugin components (being written).
