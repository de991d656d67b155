//! Host bindings generated from `wit/` (the single source of truth), one
//! module per interface version the host serves: [`v0_2`], the current one,
//! whose types are the host's own (`KeySpec`, `Rows`, `HostError`, …, re-exported
//! at this module's root), and [`v0_1`], the frozen one, whose plugins the
//! runtime converts to and from at the boundary. Below every stage that
//! speaks them.

/// `preheat:plugin@0.2.0` (`wit/0.2`): the host's types.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

/// `preheat:plugin@0.1.0` (`wit/0.1`): served beside 0.2, converted at the boundary.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

pub use v0_2::preheat;

use preheat::plugin::types::{HostError, HostErrorKind};

impl HostError {
    /// Worth retrying (a lost connection, a server failing over).
    pub fn transient(message: impl Into<String>) -> HostError {
        HostError::of(HostErrorKind::Transient, message)
    }

    /// Not allowed to this plugin (an ungranted source, a write, a key outside its prefixes).
    pub fn denied(message: impl Into<String>) -> HostError {
        HostError::of(HostErrorKind::Denied, message)
    }

    /// The request itself is wrong (SQL that does not parse, a value that does not decode).
    pub fn invalid(message: impl Into<String>) -> HostError {
        HostError::of(HostErrorKind::Invalid, message)
    }

    /// Over a limit the host enforces, named in the message.
    pub fn limit(message: impl Into<String>) -> HostError {
        HostError::of(HostErrorKind::Limit, message)
    }

    fn of(kind: HostErrorKind, message: impl Into<String>) -> HostError {
        HostError {
            kind,
            message: message.into(),
        }
    }
}
