//! RFC 9110 without I/O: request target checks, preconditions, range planning, multipart framing, the body, and
//! the rendering that ties them into a response.

pub(crate) mod body;
pub(crate) mod fields;
pub(crate) mod multipart;
pub(crate) mod preconditions;
pub(crate) mod range;
pub(crate) mod response;
pub(crate) mod target;
