//! The C ABI. Thin: every function converts, checks and forwards; no logic lives only here.
//!
//! `include/autocontour.h` is generated from this module by cbindgen (`cbindgen.toml`); the test
//! `tests/header.rs` fails when the committed header differs from a fresh generation.
//!
//! # Safety
//!
//! The functions taking pointers are `unsafe` for Rust callers and share one contract, stated
//! here instead of on each: every pointer argument is NULL (checked: a NULL where a value is
//! required returns `AC_STATUS_NULL_ARGUMENT`) or valid for the access the function's
//! documentation describes (reads for inputs, writes for outputs); strings are NUL-terminated;
//! handles are values this library handed out (others are detected where feasible: freed,
//! foreign-type and garbage handles return a status, never dereferenced); callbacks are sound to
//! call with the `user_data` given.

// Item names follow the C API (`ac_status`, `ac_engine`...), not Rust's conventions.
#![allow(non_camel_case_types)]
// The safety contract is the module's `# Safety` section above (and the header's docs).
#![allow(clippy::missing_safety_doc)]

use std::ffi::c_char;

pub(crate) mod boundary;
pub mod engine;
pub(crate) mod handle;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod rtstruct;
pub mod segment;
pub mod source;
pub mod status;

pub use boundary::ac_last_error_message;
pub use engine::*;
pub use limits::*;
pub use log::*;
pub use metrics::*;
pub use rtstruct::*;
pub use segment::*;
pub use source::*;
pub use status::*;

/// Major version of the library (the `MAJOR` in `MAJOR.MINOR.PATCH`).
pub const AC_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const AC_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const AC_VERSION_PATCH: u32 = 0;

// The version macros above must track Cargo.toml.
const _: () = {
    const fn parse(s: &[u8], mut i: usize) -> (u32, usize) {
        let mut v = 0u32;
        while i < s.len() && s[i] >= b'0' && s[i] <= b'9' {
            v = v * 10 + (s[i] - b'0') as u32;
            i += 1;
        }
        (v, i + 1)
    }
    let s = env!("CARGO_PKG_VERSION").as_bytes();
    let (major, i) = parse(s, 0);
    let (minor, i) = parse(s, i);
    let (patch, _) = parse(s, i);
    assert!(major == AC_VERSION_MAJOR && minor == AC_VERSION_MINOR && patch == AC_VERSION_PATCH);
};

static VERSION_CSTR: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Returns the library version as a NUL-terminated UTF-8 string, e.g. `"0.1.0"`.
///
/// The string is static: do not free it. Safe to call from any thread at any time, before any
/// other call.
#[unsafe(no_mangle)]
pub extern "C" fn ac_version() -> *const c_char {
    VERSION_CSTR.as_ptr().cast()
}

/// Number of live handles of all types in this process (engines, models, series, results,
/// tokens, buffers, builders, structure sets). For leak checks in tests and diagnostics; any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ac_live_handle_count() -> usize {
    boundary::boundary_value("ac_live_handle_count", 0, || Ok(handle::live_count()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_matches_crate() {
        // SAFETY: ac_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(ac_version()) };
        assert_eq!(v.to_str().unwrap(), autocontour::VERSION);
    }
}
