//! Lines in the host log, tagged with the plugin's name.
//!
//! Each level has a function taking a message and a macro of the same name
//! taking `format!` arguments:
//!
//! ```
//! use preheat_guest::log;
//!
//! log::info("starting");
//! log::warn!("user {} has no email", 42);
//! ```
//!
//! The host decides which levels it keeps. Outside the host (a native build,
//! as in unit tests and doctests) the lines go to standard error instead, as
//! `[level] message`.

pub use crate::Level;

/// Writes `message` to the host log at `level`.
pub fn log(level: Level, message: &str) {
    if cfg!(target_arch = "wasm32") {
        crate::bindings::preheat::plugin::host::log(level, message);
    } else {
        eprintln!("[{}] {message}", level.as_str());
    }
}

/// Writes `message` to the host log at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes `message` to the host log at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes `message` to the host log at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes `message` to the host log at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes `message` to the host log at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __preheat_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log($crate::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __preheat_log_trace {
    ($($arg:tt)+) => { $crate::__preheat_log!(Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __preheat_log_debug {
    ($($arg:tt)+) => { $crate::__preheat_log!(Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __preheat_log_info {
    ($($arg:tt)+) => { $crate::__preheat_log!(Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __preheat_log_warn {
    ($($arg:tt)+) => { $crate::__preheat_log!(Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __preheat_log_error {
    ($($arg:tt)+) => { $crate::__preheat_log!(Error, $($arg)+) };
}

/// `trace!("fmt", args...)`: formats and writes a line at [`Level::Trace`].
#[doc(inline)]
pub use crate::__preheat_log_trace as trace;

/// `debug!("fmt", args...)`: formats and writes a line at [`Level::Debug`].
#[doc(inline)]
pub use crate::__preheat_log_debug as debug;

/// `info!("fmt", args...)`: formats and writes a line at [`Level::Info`].
#[doc(inline)]
pub use crate::__preheat_log_info as info;

/// `warn!("fmt", args...)`: formats and writes a line at [`Level::Warn`].
#[doc(inline)]
pub use crate::__preheat_log_warn as warn;

/// `error!("fmt", args...)`: formats and writes a line at [`Level::Error`].
#[doc(inline)]
pub use crate::__preheat_log_error as error;
