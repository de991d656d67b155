//! [`Error`]: why a host call (or the SDK's decoding of its answer) failed,
//! typed so a plugin acts on the kind, not on the words; `?` turns it into a
//! [`WarmError`] (transient → retry, the rest → fail) or a `String` (the
//! message). It implements `std::error::Error`; its `Display` is the
//! generated one (kind and message), so use `message` for the words alone.

use core::fmt;

use crate::WarmError;

/// A failed [`query`](crate::query), [`query_as`](crate::query_as) or
/// [`cache_get`](crate::cache_get): its [`ErrorKind`] and the host's message
/// (which says what went wrong and what to do).
///
/// ```
/// use preheat_guest::{Error, ErrorKind, WarmError};
///
/// let lost = Error::transient("query on source `app`: the connection is lost");
/// assert!(lost.is_transient());
/// assert_eq!(WarmError::from(lost), WarmError::retry("query on source `app`: the connection is lost"));
///
/// let denied = Error { kind: ErrorKind::Denied, message: "source `x` is not granted".into() };
/// assert!(matches!(WarmError::from(denied), WarmError::Fail(_)));
/// ```
pub use crate::bindings::preheat::plugin::types::HostError as Error;

/// What kind of failure an [`Error`] is: `Transient` (worth retrying),
/// `Denied` (not allowed to this plugin), `Invalid` (the request or the
/// answer is wrong), `Limit` (over a limit the host enforces, named in the
/// message).
pub use crate::bindings::preheat::plugin::types::HostErrorKind as ErrorKind;

impl Error {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Transient, message)
    }

    /// A request or answer that is wrong: retrying cannot help.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, message)
    }

    /// An error of any kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// Whether retrying may succeed (the kind is `Transient`).
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// The same error with `context` in front of its message
    /// (`"k.1: " + "query … failed"`).
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

/// A plain message (a row that does not decode, a bad setting) is an
/// `Invalid` error.
impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::invalid(message)
    }
}

/// For `enumerate`, whose error is the message.
impl From<Error> for String {
    fn from(e: Error) -> Self {
        e.message
    }
}

/// For `produce`: a transient error retries the key, any other fails it.
impl From<Error> for WarmError {
    fn from(e: Error) -> Self {
        if e.is_transient() {
            WarmError::Retry(e.message)
        } else {
            WarmError::Fail(e.message)
        }
    }
}

/// For `produce`: a plain message (a row that does not decode) fails the key.
impl From<String> for WarmError {
    fn from(message: String) -> Self {
        WarmError::Fail(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_retry_or_fail() {
        for (kind, retried) in [
            (ErrorKind::Transient, true),
            (ErrorKind::Denied, false),
            (ErrorKind::Invalid, false),
            (ErrorKind::Limit, false),
        ] {
            let warm = WarmError::from(Error::new(kind, "m"));
            assert_eq!(matches!(warm, WarmError::Retry(_)), retried, "{kind:?}");
            assert_eq!(warm.reason(), "m");
        }
        assert_eq!(String::from(Error::invalid("bad")), "bad");
        assert_eq!(Error::from("x".to_string()).kind, ErrorKind::Invalid);
        assert_eq!(Error::transient("lost").context("k.1").message, "k.1: lost");
    }

    #[test]
    fn question_mark_converts_in_both_calls() {
        fn produce_like() -> Result<(), WarmError> {
            Err(Error::transient("lost"))?
        }
        fn enumerate_like() -> Result<(), String> {
            Err(Error::invalid("bad sql"))?
        }
        assert_eq!(produce_like(), Err(WarmError::Retry("lost".into())));
        assert_eq!(enumerate_like(), Err("bad sql".to_string()));
    }
}
