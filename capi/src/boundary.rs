//! The API boundary: per-thread last error, the panic boundary every exported body runs in, and
//! the small macros that check what C passes (after rustls-ffi's `try_ref_from_ptr!`).

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::status::ac_status;

/// A failed call: its status and the message for `ac_last_error_message()`.
#[derive(Debug, Clone)]
pub(crate) struct FfiError {
    pub status: ac_status,
    pub message: String,
}

impl FfiError {
    pub fn new(status: ac_status, message: impl Into<String>) -> Self {
        FfiError {
            status,
            message: message.into(),
        }
    }

    pub fn null(arg: &str) -> Self {
        Self::new(ac_status::NullArgument, format!("argument `{arg}` is NULL"))
    }
}

impl From<autocontour::Error> for FfiError {
    fn from(e: autocontour::Error) -> Self {
        FfiError {
            status: ac_status::from_error(&e),
            message: e.to_string(),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

/// Runs `body` inside the panic boundary: an `Err` becomes its status (message stored for
/// `ac_last_error_message`), a panic becomes `AC_STATUS_PANIC`.
pub(crate) fn boundary(name: &str, body: impl FnOnce() -> FfiResult) -> ac_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ac_status::Ok,
        Ok(Err(e)) => {
            set_last_error(&format!("{name}: {}", e.message));
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // Dropping the payload could itself panic; forget it instead (a few bytes at most).
            std::mem::forget(payload);
            set_last_error(&format!("{name}: internal error (panic): {what}"));
            ac_status::Panic
        }
    }
}

/// Like [`boundary`] for functions that return a value instead of a status (getters that cannot
/// fail in a way worth a code): a failure or panic returns `fallback`.
pub(crate) fn boundary_value<T>(name: &str, fallback: T, body: impl FnOnce() -> FfiResult<T>) -> T {
    let mut out = None;
    let status = boundary(name, || {
        out = Some(body()?);
        Ok(())
    });
    match (status, out) {
        (ac_status::Ok, Some(v)) => v,
        _ => fallback,
    }
}

/// Returns the message of the most recent failed call made on this thread: what failed and where
/// (file, DICOM tag, argument name). An empty string when no call has failed on this thread.
///
/// The pointer stays valid until the next failing call on the same thread; copy the text to keep
/// it. Do not free it. Successful calls leave the message alone.
#[unsafe(no_mangle)]
pub extern "C" fn ac_last_error_message() -> *const c_char {
    // The CString lives in this thread's slot until the next failure replaces it.
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// `&mut T` from an output pointer argument, or return `AC_STATUS_NULL_ARGUMENT`.
macro_rules! try_out {
    ($p:expr, $name:literal) => {{
        // SAFETY: the C caller promises a non-NULL output pointer is valid for writes.
        match unsafe { $p.as_mut() } {
            Some(r) => r,
            None => return Err($crate::boundary::FfiError::null($name)),
        }
    }};
}

/// `&str` from a NUL-terminated UTF-8 string argument; NULL → `AC_STATUS_NULL_ARGUMENT`,
/// invalid UTF-8 → `AC_STATUS_INVALID_UTF8`.
macro_rules! try_str {
    ($p:expr, $name:literal) => {{
        let p: *const ::std::ffi::c_char = $p;
        if p.is_null() {
            return Err($crate::boundary::FfiError::null($name));
        }
        // SAFETY: non-NULL; the caller promises a NUL-terminated string.
        let c = unsafe { ::std::ffi::CStr::from_ptr(p) };
        match c.to_str() {
            Ok(s) => s,
            Err(e) => {
                return Err($crate::boundary::FfiError::new(
                    $crate::status::ac_status::InvalidUtf8,
                    format!(
                        "argument `{}` is not valid UTF-8 (bad byte at offset {})",
                        $name,
                        e.valid_up_to()
                    ),
                ));
            }
        }
    }};
}

/// Like [`try_str!`] but NULL gives `None`.
macro_rules! try_opt_str {
    ($p:expr, $name:literal) => {{
        let p: *const ::std::ffi::c_char = $p;
        if p.is_null() {
            None
        } else {
            Some(try_str!(p, $name))
        }
    }};
}

pub(crate) use {try_opt_str, try_out, try_str};

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn panics_become_a_status() {
        let s = boundary("test_fn", || panic!("boom"));
        assert_eq!(s, ac_status::Panic);
        // SAFETY: valid until the next failure on this thread.
        let m = unsafe { CStr::from_ptr(ac_last_error_message()) };
        assert!(m.to_str().unwrap().contains("boom"), "{m:?}");
    }

    #[test]
    fn errors_set_the_message() {
        let s = boundary("f", || Err(FfiError::null("path")));
        assert_eq!(s, ac_status::NullArgument);
        // SAFETY: as above.
        let m = unsafe { CStr::from_ptr(ac_last_error_message()) };
        assert_eq!(m.to_str().unwrap(), "f: argument `path` is NULL");
        assert_eq!(boundary_value("g", 7, || Ok(3)), 3);
        assert_eq!(boundary_value::<i32>("g", 7, || panic!("x")), 7);
    }
}
