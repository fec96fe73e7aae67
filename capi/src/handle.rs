//! Opaque handles and the registry of live ones (after voicevox_core's `object.rs`).
//!
//! A handle given to C is a registry key, not the address of the object: the object lives in an
//! `Arc` inside the registry. That gives, for every call:
//! - a freed, never-created or garbage handle is refused (`AC_STATUS_INVALID_HANDLE`), and keys
//!   are never reused, so a double free is always detected;
//! - a handle of another type is refused (`AC_STATUS_WRONG_HANDLE_TYPE`);
//! - `_free` while another thread is still inside a call on the same object is safe: the call
//!   holds its own `Arc`, and the object is dropped when the last call returns.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::boundary::{FfiError, FfiResult};
use super::status::ac_status;

/// A handle type of the C API and the Rust object behind it.
pub(crate) trait Handle {
    /// The object the registry keeps for this handle type.
    type Body: Any + Send + Sync;
    /// Name used in messages (`ac_model`).
    const NAME: &'static str;
}

struct Entry {
    kind: &'static str,
    body: Arc<dyn Any + Send + Sync>,
}

struct Registry {
    next: usize,
    live: HashMap<usize, Entry>,
}

/// First key handed out; keys step by 16 so they look like aligned addresses to debuggers.
const FIRST_KEY: usize = 0x10_0000;

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        next: FIRST_KEY,
        live: HashMap::new(),
    })
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // The registry is never left inconsistent by a panic (single inserts/removes), so a
    // poisoned lock is still usable.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers `body` and returns the new handle.
pub(crate) fn register<H: Handle>(body: H::Body) -> *mut H {
    let mut r = registry();
    let key = r.next;
    r.next = r.next.wrapping_add(16);
    r.live.insert(
        key,
        Entry {
            kind: H::NAME,
            body: Arc::new(body),
        },
    );
    std::ptr::without_provenance_mut(key)
}

fn lookup(key: usize, want: &'static str, arg: &str) -> FfiResult<Arc<dyn Any + Send + Sync>> {
    let r = registry();
    match r.live.get(&key) {
        None => Err(FfiError::new(
            ac_status::InvalidHandle,
            format!(
                "argument `{arg}` ({key:#x}) is not a live {want} handle (already freed, or never created)"
            ),
        )),
        Some(e) if e.kind != want => Err(FfiError::new(
            ac_status::WrongHandleType,
            format!("argument `{arg}` is an {} handle, not an {want}", e.kind),
        )),
        Some(e) => Ok(e.body.clone()),
    }
}

/// The object behind a handle argument, checked for NULL, liveness and type.
pub(crate) fn get<H: Handle>(p: *const H, arg: &str) -> FfiResult<Arc<H::Body>> {
    if p.is_null() {
        return Err(FfiError::null(arg));
    }
    let any = lookup(p.addr(), H::NAME, arg)?;
    any.downcast::<H::Body>().map_err(|_| {
        FfiError::new(
            ac_status::WrongHandleType,
            format!("argument `{arg}` does not hold an {}", H::NAME),
        )
    })
}

/// Like [`get`], NULL giving `None`.
pub(crate) fn get_opt<H: Handle>(p: *const H, arg: &str) -> FfiResult<Option<Arc<H::Body>>> {
    if p.is_null() {
        Ok(None)
    } else {
        get(p, arg).map(Some)
    }
}

/// Removes a handle from the registry (NULL: nothing to do). The object is dropped here unless
/// a call on another thread still holds it; then it is dropped when that call returns.
pub(crate) fn release<H: Handle>(p: *mut H, arg: &str) -> FfiResult {
    if p.is_null() {
        return Ok(());
    }
    lookup(p.addr(), H::NAME, arg)?;
    let removed = registry().live.remove(&p.addr());
    // Dropped outside the lock: dropping a model or a series may take a while.
    drop(removed);
    Ok(())
}

/// Number of live handles (tests use it to check that nothing leaks).
pub(crate) fn live_count() -> usize {
    registry().live.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct A;
    impl Handle for A {
        type Body = u32;
        const NAME: &'static str = "a";
    }
    struct B;
    impl Handle for B {
        type Body = String;
        const NAME: &'static str = "b";
    }

    #[test]
    fn detects_wrong_type_double_free_and_null() {
        let a = register::<A>(5);
        assert_eq!(*get(a, "a").unwrap(), 5);
        let wrong = a.cast::<B>();
        assert_eq!(
            get(wrong, "x").unwrap_err().status,
            ac_status::WrongHandleType
        );
        assert_eq!(
            release(wrong, "x").unwrap_err().status,
            ac_status::WrongHandleType
        );
        assert!(release(a, "a").is_ok());
        assert_eq!(
            release(a, "a").unwrap_err().status,
            ac_status::InvalidHandle
        );
        assert_eq!(get(a, "a").unwrap_err().status, ac_status::InvalidHandle);
        assert!(release::<A>(std::ptr::null_mut(), "a").is_ok());
        assert_eq!(
            get::<A>(std::ptr::null(), "a").unwrap_err().status,
            ac_status::NullArgument
        );
        let b = register::<B>("s".into());
        assert_ne!(b.addr(), a.addr(), "keys are never reused");
        release(b, "b").unwrap();
    }
}
