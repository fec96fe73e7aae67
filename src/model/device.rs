//! Execution providers: what the caller asks for, the fallback rule, and what actually ran.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::runtime::RuntimeOptions;

/// Execution provider the caller asks for.

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Device {
    /// CPU.
    Cpu,
    /// NVIDIA CUDA on this device id.
    Cuda(i32),
    /// NVIDIA TensorRT on this device id (with CUDA, then CPU behind it).
    TensorRt(i32),
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, id) = match s.split_once(':') {
            Some((k, n)) => (
                k.to_string(),
                n.parse::<i32>()
                    .map_err(|_| Error::InvalidArgument(format!("device id in {s:?}")))?,
            ),
            None => (s.clone(), 0),
        };
        match kind.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(id)),
            "tensorrt" | "trt" => Ok(Device::TensorRt(id)),
            _ => Err(Error::InvalidArgument(format!(
                "device {s:?}: expected cpu, cuda[:N] or tensorrt[:N]"
            ))),
        }
    }
}

/// What to do when the requested execution provider cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fallback {
    /// Fall back to the CPU and report it in [`Model::execution`](super::Model::execution).
    ToCpu,
    /// Fail with [`Error::ExecutionProvider`].
    Fail,
}

/// Options for opening a model.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Where ONNX Runtime is.
    pub runtime: RuntimeOptions,
    /// Execution provider.
    pub device: Device,
    /// CPU threads for ONNX Runtime's intra-op pool (0 = ONNX Runtime's default). Idle pool
    /// threads block rather than spin, so the engine's own stages between calls get the cores.
    pub threads: usize,
    /// Behaviour when `device` is unavailable.
    pub fallback: Fallback,
    /// nnU-Net packages: which folds to load and ensemble (`None`: every fold the package
    /// lists). An error for other packages.
    pub folds: Option<Vec<u32>>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            runtime: RuntimeOptions::default(),
            device: Device::Cpu,
            threads: 0,
            fallback: Fallback::ToCpu,
            folds: None,
        }
    }
}

/// Which execution provider runs, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    /// What the caller asked for.
    pub requested: Device,
    /// What runs: `CPU`, `CUDA:0`, `TensorRT:0`.
    pub provider: String,
    /// Set when the request could not be met and the CPU runs instead: the reason.
    pub fallback_reason: Option<String>,
}
