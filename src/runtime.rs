//! Loading ONNX Runtime from a library file the caller chooses.
//!
//! The SDK never loads `onnxruntime` by bare name and never downloads it. The library is found,
//! in this order, at:
//!
//! 1. the path the caller passes ([`RuntimeOptions::library`], the C API's engine options, or
//!    the CLI's `--ort-lib`);
//! 2. the `AUTOCONTOUR_ORT_LIB` environment variable;
//! 3. `libonnxruntime.so.1` / `libonnxruntime.so` (`onnxruntime.dll`, `libonnxruntime.dylib`)
//!    next to the running executable.
//!
//! Before handing the file to `ort`, this module opens it itself, checks that it exports
//! `OrtGetApiBase`, reads its version string and compares it with [`MIN_ORT_VERSION`], so every
//! failure is a named [`Error`] and never a panic inside `ort`.
//!
//! ONNX Runtime can be loaded once per process. A later request for a different file is refused
//! with [`Error::OrtAlreadyLoaded`]; asking again for the same file is a no-op.

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result, cause};

/// The oldest ONNX Runtime release the SDK accepts (major, minor).
///
/// `ort` is built against API level 22 (`ort`'s `api-22` feature), so any ONNX Runtime from 1.22
/// on serves it; the project tests with 1.31.1 from the PyPI wheel.
pub const MIN_ORT_VERSION: (u32, u32) = (1, 22);

/// The ONNX Runtime version this SDK is tested with.
pub const TESTED_ORT_VERSION: &str = "1.31.1";

/// Environment variable naming the ONNX Runtime library when the caller passes no path.
pub const ORT_LIB_ENV: &str = "AUTOCONTOUR_ORT_LIB";

/// Where ONNX Runtime is and how it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The library file that was loaded (as given, made absolute).
    pub path: PathBuf,
    /// The version string ONNX Runtime reports, e.g. `1.31.1`.
    pub version: String,
}

/// How to find ONNX Runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Path to the ONNX Runtime shared library. `None`: environment variable, then next to the
    /// executable.
    pub library: Option<PathBuf>,
}

struct Loaded {
    info: RuntimeInfo,
    // Keeps the ort environment (and with it the global thread pools and logger) alive.
    env: ort::environment::Environment,
}

static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

#[cfg(target_os = "windows")]
const CANDIDATES: &[&str] = &["onnxruntime.dll"];
#[cfg(target_os = "macos")]
const CANDIDATES: &[&str] = &["libonnxruntime.dylib"];
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
const CANDIDATES: &[&str] = &["libonnxruntime.so.1", "libonnxruntime.so"];

/// Resolves which library file would be loaded for `options`, without loading it.
pub fn resolve_library(options: &RuntimeOptions) -> Result<PathBuf> {
    if let Some(p) = &options.library {
        return Ok(p.clone());
    }
    if let Some(v) = std::env::var_os(ORT_LIB_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        for name in CANDIDATES {
            let p = dir.join(name);
            if p.exists() {
                return Ok(p);
            }
            tried.push(p);
        }
    }
    Err(Error::OrtNotConfigured {
        tried: tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Parses `major.minor[.patch…]` from an ONNX Runtime version string.
fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor_text: String = it
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor_text.parse().ok()?))
}

#[repr(C)]
struct OrtApiBase {
    get_api: Option<unsafe extern "C" fn(u32) -> *const std::ffi::c_void>,
    get_version_string: Option<unsafe extern "C" fn() -> *const c_char>,
}

/// Opens `path`, checks it is ONNX Runtime and returns its version string, without keeping it
/// loaded and without touching `ort`'s global state.
pub fn probe_library(path: &Path) -> Result<String> {
    let path = absolute(path);
    if !path.exists() {
        return Err(Error::OrtNotFound { path });
    }
    // A truncated library would be mapped and then fault (SIGBUS) inside the dynamic loader,
    // killing the host: check the file's structure first.
    check_elf(&path)?;
    // SAFETY: loading a shared library runs its initialisers; the caller chose this file as
    // their ONNX Runtime. Symbols are checked before use.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| Error::OrtLoad {
        path: path.clone(),
        reason: e.to_string(),
        source: cause(e),
    })?;
    let version = {
        // SAFETY: the signature is the documented `const OrtApiBase* ORT_API_CALL OrtGetApiBase(void)`.
        let getter: libloading::Symbol<unsafe extern "C" fn() -> *const OrtApiBase> =
            unsafe { lib.get(b"OrtGetApiBase\0") }
                .map_err(|_| Error::OrtNotOrt { path: path.clone() })?;
        // SAFETY: calling the exported function; the result is checked for NULL.
        let base = unsafe { getter() };
        // SAFETY: non-null pointer to a static OrtApiBase inside the library.
        let base =
            unsafe { base.as_ref() }.ok_or_else(|| Error::OrtNotOrt { path: path.clone() })?;
        let get_version = base
            .get_version_string
            .ok_or_else(|| Error::OrtNotOrt { path: path.clone() })?;
        // SAFETY: documented to return a static NUL-terminated string.
        let raw = unsafe { get_version() };
        if raw.is_null() {
            return Err(Error::OrtNotOrt { path });
        }
        // SAFETY: non-null, NUL-terminated, static lifetime inside the loaded library.
        unsafe { CStr::from_ptr(raw) }
            .to_string_lossy()
            .into_owned()
    };
    drop(lib);
    match parse_version(&version) {
        Some(v) if v >= MIN_ORT_VERSION => Ok(version),
        Some(_) => Err(Error::OrtTooOld {
            path,
            found: version,
            required: format!("{}.{}", MIN_ORT_VERSION.0, MIN_ORT_VERSION.1),
        }),
        None => Err(Error::OrtLoad {
            path,
            reason: format!("unreadable version string {version:?}"),
            source: None,
        }),
    }
}

/// On ELF platforms, checks that the file is a complete ELF shared object: header, program
/// headers, every loadable segment and the section header table lie inside the file.
#[cfg(all(unix, not(target_os = "macos")))]
fn check_elf(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |reason: String| Error::OrtLoad {
        path: path.to_path_buf(),
        reason,
        source: None,
    };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = vec![0u8; 64];
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    if n < 52 || head.get(0..4) != Some(b"\x7fELF".as_slice()) {
        return Err(bad("not an ELF shared library".into()));
    }
    let is64 = head[4] == 2;
    let le = head[5] == 1;
    let rd = |b: &[u8], off: usize, size: usize| -> Option<u64> {
        let s = b.get(off..off + size)?;
        let mut v = 0u64;
        for (i, byte) in s.iter().enumerate() {
            let shift = if le { 8 * i } else { 8 * (size - 1 - i) };
            v |= (*byte as u64) << shift;
        }
        Some(v)
    };
    let (phoff, phentsize, phnum, shoff, shentsize, shnum) = if is64 {
        (
            rd(&head, 32, 8),
            rd(&head, 54, 2),
            rd(&head, 56, 2),
            rd(&head, 40, 8),
            rd(&head, 58, 2),
            rd(&head, 60, 2),
        )
    } else {
        (
            rd(&head, 28, 4),
            rd(&head, 42, 2),
            rd(&head, 44, 2),
            rd(&head, 32, 4),
            rd(&head, 46, 2),
            rd(&head, 48, 2),
        )
    };
    let (Some(phoff), Some(phentsize), Some(phnum), Some(shoff), Some(shentsize), Some(shnum)) =
        (phoff, phentsize, phnum, shoff, shentsize, shnum)
    else {
        return Err(bad("truncated ELF header".into()));
    };
    let ph_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if ph_end > len || phentsize == 0 || phnum == 0 {
        return Err(bad(format!(
            "file is truncated or damaged ({len} bytes; program headers end at {ph_end})"
        )));
    }
    if shnum > 0 {
        let sh_end = shoff.saturating_add(shentsize.saturating_mul(shnum));
        if sh_end > len {
            return Err(bad(format!(
                "file is truncated ({len} bytes; section headers end at {sh_end})"
            )));
        }
    }
    let mut ph = vec![0u8; (ph_end - phoff) as usize];
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(phoff))
        .map_err(|e| Error::io(path, e))?;
    f.read_exact(&mut ph).map_err(|e| Error::io(path, e))?;
    for i in 0..phnum as usize {
        let b = ph.get(i * phentsize as usize..).unwrap_or(&[]);
        let (ptype, offset, filesz) = if is64 {
            (rd(b, 0, 4), rd(b, 8, 8), rd(b, 32, 8))
        } else {
            (rd(b, 0, 4), rd(b, 4, 4), rd(b, 16, 4))
        };
        let (Some(ptype), Some(offset), Some(filesz)) = (ptype, offset, filesz) else {
            return Err(bad("truncated program header".into()));
        };
        if ptype == 1 && offset.saturating_add(filesz) > len {
            return Err(bad(format!(
                "file is truncated ({len} bytes; a loadable segment ends at {})",
                offset.saturating_add(filesz)
            )));
        }
    }
    Ok(())
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn check_elf(_path: &Path) -> Result<()> {
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Loads ONNX Runtime (once per process) and returns what was loaded.
///
/// Safe to call from many threads; the first successful call wins. A call naming a different
/// library after one was loaded fails with [`Error::OrtAlreadyLoaded`].
pub fn ensure_loaded(options: &RuntimeOptions) -> Result<RuntimeInfo> {
    let mut guard = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = guard.as_ref() {
        if let Some(asked) = &options.library {
            let asked = absolute(asked);
            let same = asked == loaded.info.path
                || (asked.canonicalize().ok().is_some()
                    && asked.canonicalize().ok() == loaded.info.path.canonicalize().ok());
            if !same {
                return Err(Error::OrtAlreadyLoaded {
                    loaded: loaded.info.path.clone(),
                    requested: asked,
                });
            }
        }
        return Ok(loaded.info.clone());
    }
    let path = absolute(&resolve_library(options)?);
    let version = probe_library(&path)?;
    let builder = ort::init_from(&path).map_err(|e| Error::OrtLoad {
        path: path.clone(),
        reason: e.to_string(),
        source: cause(e),
    })?;
    let env = builder
        .with_name("autocontour")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::ort("creating the ONNX Runtime environment", e))?;
    log::info!("loaded ONNX Runtime {version} from {}", path.display());
    let info = RuntimeInfo { path, version };
    *guard = Some(Loaded {
        info: info.clone(),
        env,
    });
    Ok(info)
}

/// Loads ONNX Runtime if needed and returns the process-wide environment sessions are made in.
pub fn environment(options: &RuntimeOptions) -> Result<ort::environment::Environment> {
    ensure_loaded(options)?;
    LOADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|l| l.env.clone())
        .ok_or_else(|| Error::Ort {
            reason: "ONNX Runtime environment vanished".into(),
            source: None,
        })
}

/// What is loaded now, if anything.
pub fn loaded() -> Option<RuntimeInfo> {
    LOADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|l| l.info.clone())
}

/// Opens the ONNX model at `path` and runs it once with every input a zero tensor (dynamic
/// dimensions set to 1): a smoke test that ONNX Runtime can load and execute the graph. Returns
/// each output's name and shape.
///
/// ```no_run
/// use autocontour::runtime::{RuntimeOptions, environment, run_once_on_zeros};
/// let env = environment(&RuntimeOptions::default())?;
/// for (name, shape) in run_once_on_zeros(&env, std::path::Path::new("models/thorax-basic/model.onnx"))? {
///     println!("{name}: {shape:?}");
/// }
/// # Ok::<(), autocontour::Error>(())
/// ```
pub fn run_once_on_zeros(
    env: &ort::environment::Environment,
    path: &Path,
) -> Result<Vec<(String, Vec<i64>)>> {
    use ort::session::Session;
    use ort::value::{Tensor, ValueType};
    let ort_err = |e: ort::Error| Error::ort(path.display(), e);
    let mut session = Session::builder(env)
        .map_err(ort_err)?
        .commit_from_file(path)
        .map_err(ort_err)?;
    let mut inputs = Vec::new();
    for input in session.inputs() {
        let ValueType::Tensor { shape, .. } = input.dtype() else {
            return Err(Error::Ort {
                reason: format!("{}: input {} is not a tensor", path.display(), input.name()),
                source: None,
            });
        };
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| if d > 0 { d as usize } else { 1 })
            .collect();
        let n: usize = dims.iter().product();
        let t = Tensor::from_array((dims, vec![0f32; n])).map_err(ort_err)?;
        inputs.push((input.name().to_string(), t));
    }
    let outputs = session.run(inputs).map_err(ort_err)?;
    Ok(outputs
        .iter()
        .map(|(name, value)| (name.to_string(), value.shape().to_vec()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("1.31.1"), Some((1, 31)));
        assert_eq!(parse_version("1.22.0-dev"), Some((1, 22)));
        assert_eq!(parse_version("2.0"), Some((2, 0)));
        assert_eq!(parse_version("1.9rc1"), Some((1, 9)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn missing_library_is_named() {
        let e = probe_library(Path::new("/nonexistent/libonnxruntime.so.1")).unwrap_err();
        assert!(matches!(e, Error::OrtNotFound { .. }), "{e}");
    }

    #[test]
    fn corrupt_library_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("libonnxruntime.so.1");
        std::fs::write(&p, b"this is not a shared library").unwrap();
        let e = probe_library(&p).unwrap_err();
        assert!(matches!(e, Error::OrtLoad { .. }), "{e}");
    }

    #[test]
    fn explicit_path_wins() {
        let o = RuntimeOptions {
            library: Some("/x/y.so".into()),
        };
        assert_eq!(resolve_library(&o).unwrap(), PathBuf::from("/x/y.so"));
    }
}
