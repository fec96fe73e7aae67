//! Forwarding the library's `log` records to a C callback, only when the host asks for it.

use std::ffi::{c_char, c_void};
use std::sync::RwLock;

use super::boundary::{FfiError, boundary};
use super::engine::cstring;
use super::status::ac_status;

/// Severity of a log record (`ac_log_callback`'s `level`, `ac_set_log_callback`'s `max_level`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ac_log_level {
    /// Logging off (only meaningful as `max_level`).
    Off = 0,
    /// Errors.
    Error = 1,
    /// Warnings (e.g. an execution provider fell back to the CPU).
    Warn = 2,
    /// Progress of the main steps (ONNX Runtime loaded, model opened...).
    Info = 3,
    /// Details for debugging.
    Debug = 4,
    /// Very verbose details.
    Trace = 5,
}

/// Log callback: `user_data` as given to `ac_set_log_callback`, `level` an `ac_log_level`,
/// `target` the library module (e.g. `"autocontour::model"`), `message` the text. Both strings
/// are NUL-terminated UTF-8, valid only during the call. Called from whichever thread logs (any
/// thread the library runs on, concurrently): it must be thread-safe and must not unwind.
pub type ac_log_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: u32,
        target: *const c_char,
        message: *const c_char,
    ),
>;

type Sink = (
    unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char),
    usize,
);

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

struct CLogger;

static LOGGER: CLogger = CLogger;

impl log::Log for CLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        SINK.read().map(|s| s.is_some()).unwrap_or(false)
    }

    fn log(&self, record: &log::Record<'_>) {
        // Copy the sink out so the lock is not held during the callback (which may itself call
        // ac_set_log_callback).
        let sink = SINK.read().map(|s| *s).unwrap_or(None);
        if let Some((cb, ud)) = sink {
            let level = match record.level() {
                log::Level::Error => ac_log_level::Error,
                log::Level::Warn => ac_log_level::Warn,
                log::Level::Info => ac_log_level::Info,
                log::Level::Debug => ac_log_level::Debug,
                log::Level::Trace => ac_log_level::Trace,
            };
            let target = cstring(record.target());
            let message = cstring(&record.args().to_string());
            // SAFETY: the host installed this callback and user data for exactly this use.
            unsafe {
                cb(
                    ud as *mut c_void,
                    level as u32,
                    target.as_ptr(),
                    message.as_ptr(),
                )
            };
        }
    }

    fn flush(&self) {}
}

/// Installs `callback` to receive the library's log records up to `max_level` (an
/// `ac_log_level`), replacing any previous callback; `callback` NULL (or `max_level`
/// `AC_LOG_LEVEL_OFF`) turns forwarding off. The library logs nothing anywhere until this is
/// called.
///
/// The setting is process-wide. Returns `AC_STATUS_LOGGER_IN_USE` when the process already has
/// another logger installed through Rust's `log` facade, `AC_STATUS_INVALID_ARGUMENT` for a level
/// above 5. Any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ac_set_log_callback(
    callback: ac_log_callback,
    user_data: *mut c_void,
    max_level: u32,
) -> ac_status {
    boundary("ac_set_log_callback", || {
        let filter = match max_level {
            0 => log::LevelFilter::Off,
            1 => log::LevelFilter::Error,
            2 => log::LevelFilter::Warn,
            3 => log::LevelFilter::Info,
            4 => log::LevelFilter::Debug,
            5 => log::LevelFilter::Trace,
            n => {
                return Err(FfiError::new(
                    ac_status::InvalidArgument,
                    format!("max_level {n}: expected 0 (off) to 5 (trace)"),
                ));
            }
        };
        let ours = || std::ptr::addr_eq(log::logger(), &LOGGER as &dyn log::Log);
        if callback.is_some() && log::set_logger(&LOGGER).is_err() && !ours() {
            return Err(FfiError::new(
                ac_status::LoggerInUse,
                "another logger is already installed in this process",
            ));
        }
        let sink = callback.map(|cb| (cb, user_data as usize));
        *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
        if ours() {
            // Only touch the global level when the installed logger is ours.
            log::set_max_level(if sink.is_some() {
                filter
            } else {
                log::LevelFilter::Off
            });
        }
        Ok(())
    })
}
