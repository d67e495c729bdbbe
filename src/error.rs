//! [`MmapError`]: everything that can go wrong between a path and its bytes, and the HTTP status of each case;
//! no I/O and no response building (the service renders errors).

use std::fmt;
use std::io;
use std::path::Path;

use http::StatusCode;

/// An error from opening, mapping or slicing a file.
///
/// Each variant is a case a caller treats differently, and [`MmapError::status_code`] says which HTTP answer it
/// corresponds to. Paths are carried as display strings, so `println!("{}", path)` works.
///
/// # Examples
///
/// ```
/// use mmap_serve::{MmapError, MmapFile};
/// # let d = tempfile::tempdir()?; let path = d.path().join("t.bin"); std::fs::write(&path, [1u8; 100])?;
/// let f = MmapFile::new(&path)?;
/// match f.range(0..1024) {
///     Err(MmapError::InvalidRange(msg)) => assert!(msg.contains("1024")),
///     other => panic!("expected InvalidRange, got {other:?}"),
/// }
/// match MmapFile::new(d.path().join("missing")) {
///     Err(MmapError::FileNotFound(path)) => assert!(path.ends_with("missing")),
///     other => panic!("expected FileNotFound, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MmapError {
    /// No file at this path (HTTP 404).
    FileNotFound(String),
    /// The process may not read this file (HTTP 403).
    PermissionDenied(String),
    /// The path names a directory, not a file (HTTP 404).
    IsADirectory(String),
    /// The path names a FIFO, socket or device, which is never opened for serving (HTTP 404).
    NotAFile(String),
    /// A requested byte range is reversed or lies outside the file (HTTP 416).
    InvalidRange(String),
    /// The process ran out of file descriptors or address space; retrying later can succeed (HTTP 503).
    Exhausted {
        /// The file being opened or mapped.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is empty and another process has it open for writing: no version of it is final yet, and
    /// retrying once the writer is done can succeed (HTTP 503). A non-empty file being written is opened,
    /// and every response body of it ends with an error instead
    /// ([`MmapFile::opened_while_written`](crate::MmapFile::opened_while_written)).
    BeingWritten(String),
    /// Any other I/O error (HTTP 500).
    Io {
        /// The file being opened, mapped or read.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl MmapError {
    /// The HTTP status this error corresponds to.
    ///
    /// ```
    /// use http::StatusCode;
    /// use mmap_serve::MmapError;
    /// assert_eq!(MmapError::FileNotFound("x".into()).status_code(), StatusCode::NOT_FOUND);
    /// assert_eq!(MmapError::InvalidRange("x".into()).status_code(), StatusCode::RANGE_NOT_SATISFIABLE);
    /// ```
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::FileNotFound(_) | Self::IsADirectory(_) | Self::NotAFile(_) => {
                StatusCode::NOT_FOUND
            }
            Self::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Self::InvalidRange(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Exhausted { .. } | Self::BeingWritten(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Classifies an I/O error that happened while opening, inspecting or mapping `path`.
    pub(crate) fn from_io(path: &Path, source: io::Error) -> Self {
        let shown = path.display().to_string();
        match source.kind() {
            io::ErrorKind::NotFound => Self::FileNotFound(shown),
            io::ErrorKind::PermissionDenied => Self::PermissionDenied(shown),
            io::ErrorKind::IsADirectory => Self::IsADirectory(shown),
            // A component of the path is a regular file (`file.bin/x`): there is nothing there.
            io::ErrorKind::NotADirectory => Self::FileNotFound(shown),
            _ => match source.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENAMETOOLONG) => Self::FileNotFound(shown),
                Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOMEM)
                | Some(libc::EAGAIN) => Self::Exhausted {
                    path: shown,
                    source,
                },
                _ => Self::Io {
                    path: shown,
                    source,
                },
            },
        }
    }
}

impl fmt::Display for MmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FileNotFound(path) => write!(f, "file not found: {path}"),
            Self::PermissionDenied(path) => write!(f, "permission denied: {path}"),
            Self::IsADirectory(path) => write!(f, "is a directory: {path}"),
            Self::NotAFile(path) => write!(f, "not a regular file: {path}"),
            Self::InvalidRange(msg) => write!(f, "invalid range: {msg}"),
            Self::Exhausted { path, .. } => write!(f, "out of resources opening {path}"),
            Self::BeingWritten(path) => write!(f, "empty and being written: {path}"),
            Self::Io { path, .. } => write!(f, "i/o error on {path}"),
        }
    }
}

impl std::error::Error for MmapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Exhausted { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(err: io::Error) -> StatusCode {
        MmapError::from_io(Path::new("/x"), err).status_code()
    }

    #[test]
    fn io_errors_map_to_the_status_a_client_should_see() {
        assert_eq!(
            classify(io::ErrorKind::NotFound.into()),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            classify(io::ErrorKind::PermissionDenied.into()),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::EISDIR)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::ENOTDIR)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::ELOOP)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::EMFILE)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::ENFILE)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::ENOMEM)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            classify(io::Error::from_raw_os_error(libc::EIO)),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn display_is_one_lowercase_line_and_source_is_kept() {
        let e = MmapError::from_io(Path::new("/a b"), io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(e.to_string(), "i/o error on /a b");
        assert!(std::error::Error::source(&e).is_some());
        let e = MmapError::FileNotFound("/t".into());
        assert_eq!(e.to_string(), "file not found: /t");
        assert!(std::error::Error::source(&e).is_none());
    }
}
