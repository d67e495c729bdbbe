//! Framework glue that needs the framework's types, one file per cargo feature.

#[cfg(feature = "axum")]
mod axum;
