//! Framework glue that needs the framework's types, one file per cargo feature; no behaviour of its own (the
//! answers are the service's).

#[cfg(feature = "axum")]
mod axum;
