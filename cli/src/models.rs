//! Model packages opened once per process and shared by every case (`worker`, `gateway`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use autocontour::Error;
use autocontour::model::{Model, ModelOptions};

/// A model package folder and the folds it was opened with.
type ModelKey = (PathBuf, Option<Vec<u32>>);

/// Models kept open at once besides the default one.
const KEPT: usize = 2;

/// Opened models by (folder, folds): the default model stays; others are kept until more than
/// two are open.
pub struct ModelCache {
    default: PathBuf,
    options: ModelOptions,
    models: Mutex<HashMap<ModelKey, Arc<Model>>>,
}

impl ModelCache {
    /// A cache opening packages with `options`; `default` is the package of cases naming none.
    pub fn new(default: PathBuf, options: ModelOptions) -> Self {
        ModelCache {
            default,
            options,
            models: Mutex::new(HashMap::new()),
        }
    }

    /// The model in `dir` (the default package when `None`) opened with `folds`.
    pub fn get(&self, dir: Option<&Path>, folds: Option<Vec<u32>>) -> Result<Arc<Model>, Error> {
        let dir = dir.unwrap_or(&self.default);
        let key = (dir.to_path_buf(), folds.clone());
        let mut cache = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let opts = ModelOptions {
            folds,
            ..self.options.clone()
        };
        let model = Arc::new(Model::open(dir, &opts)?);
        if let Some(reason) = &model.execution.fallback_reason {
            log::warn!("{}: running on the CPU: {reason}", dir.display());
        }
        if cache.len() > KEPT {
            let default = (self.default.clone(), None);
            cache.retain(|k, _| *k == default);
        }
        cache.insert(key, model.clone());
        Ok(model)
    }
}
