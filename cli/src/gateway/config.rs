//! `gateway.toml`: what the gateway listens on, whom it accepts, where it spools and sends.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{CliError, CliResult};

/// The gateway's configuration file (TOML). Relative paths are relative to the file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The gateway's own AE title (the called AE title it answers to, besides the routes').
    pub ae_title: String,
    /// Address and port to listen on, e.g. `0.0.0.0:11112`.
    pub listen: String,
    /// Calling AE titles allowed to associate; any other is rejected at association
    /// ("calling AE title not recognised"). `["*"]` accepts any (not for production).
    pub allowed_calling_ae_titles: Vec<String>,
    /// Associations served at once; further ones are rejected (transient, local limit exceeded).
    #[serde(default = "default_max_associations")]
    pub max_associations: usize,
    /// Spool folder: received instances, series waiting and running, results to send.
    pub spool: PathBuf,
    /// A series is complete when no instance of it arrived for this many seconds.
    #[serde(default = "default_idle")]
    pub series_idle_seconds: f64,
    /// Model package for series no route matches (default: the bundled default model).
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Routes, first match wins: a called AE title, or a rule on Series Description / Body Part
    /// Examined, selects a model package.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Where results are sent (C-STORE).
    pub destination: Destination,
    /// Also send the label map as a DICOM Segmentation.
    #[serde(default)]
    pub seg: bool,
    /// Execution provider: `cpu`, `cuda[:N]`, `tensorrt[:N]`.
    #[serde(default = "default_device")]
    pub device: String,
    /// CPU threads for ONNX Runtime (0: its default).
    #[serde(default)]
    pub threads: usize,
    /// Site profile for every result.
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Keep the received CT of a series after its result was sent (default: removed).
    #[serde(default)]
    pub keep_sent_series: bool,
    /// Hand complete series to RabbitMQ workers instead of segmenting them in this process
    /// (the spool must be shared with the workers at the same path).
    #[serde(default)]
    pub queue: Option<super::handoff::QueueConfig>,
    /// TLS on the listening port (client certificates required).
    #[serde(default)]
    pub tls: Option<super::tls::ListenTls>,
    /// Pseudonymise every series before the model sees it, re-identify the results.
    #[serde(default)]
    pub deid: Option<super::reid::DeidConfig>,
}

/// A routing rule: every given condition must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The called AE title the series was sent to.
    #[serde(default)]
    pub called_ae_title: Option<String>,
    /// A text the Series Description contains (case-insensitive).
    #[serde(default)]
    pub series_description_contains: Option<String>,
    /// Body Part Examined equals this (case-insensitive).
    #[serde(default)]
    pub body_part: Option<String>,
    /// The model package for matching series.
    pub model: PathBuf,
}

/// A DICOM peer results are sent to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Its AE title.
    pub ae_title: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Our calling AE title towards it (default: `ae_title` of the gateway).
    #[serde(default)]
    pub calling_ae_title: Option<String>,
    /// Seconds before the first retry of a failed send; doubles up to 5 minutes.
    #[serde(default = "default_retry")]
    pub retry_seconds: f64,
    /// TLS towards the destination.
    #[serde(default)]
    pub tls: Option<super::tls::SendTls>,
}

fn default_max_associations() -> usize {
    8
}
fn default_idle() -> f64 {
    10.0
}
fn default_device() -> String {
    "cpu".into()
}
fn default_retry() -> f64 {
    2.0
}

/// An AE title is 1–16 characters of the default repertoire, no backslash or control character,
/// not all spaces.
pub fn check_ae_title(what: &str, t: &str) -> CliResult<()> {
    let ok = !t.trim().is_empty()
        && t.len() <= 16
        && t.chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\');
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{what}: {t:?} is not an AE title (1-16 ASCII characters, no backslash or control \
             character, not all spaces)"
        )))
    }
}

impl GatewayConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> CliResult<GatewayConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| autocontour::Error::io(path, e))?;
        let mut c: GatewayConfig = toml::from_str(&text).map_err(|e| CliError::Input {
            path: path.to_path_buf(),
            reason: format!("not a gateway configuration: {e}"),
            source: None,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut c.spool);
        if let Some(t) = c.tls.as_mut() {
            resolve(&mut t.cert);
            resolve(&mut t.key);
            resolve(&mut t.client_ca);
        }
        if let Some(d) = c.deid.as_mut() {
            resolve(&mut d.key_file);
            if let Some(s) = d.shared_dir.as_mut() {
                resolve(s);
            }
        }
        if let Some(t) = c.destination.tls.as_mut() {
            resolve(&mut t.ca);
            if let Some(p) = t.cert.as_mut() {
                resolve(p);
            }
            if let Some(p) = t.key.as_mut() {
                resolve(p);
            }
        }
        if let Some(m) = c.model.as_mut() {
            resolve(m);
        }
        if let Some(p) = c.profile.as_mut() {
            resolve(p);
        }
        for r in &mut c.routes {
            resolve(&mut r.model);
        }
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> CliResult<()> {
        check_ae_title("ae_title", &self.ae_title)?;
        check_ae_title("destination.ae_title", &self.destination.ae_title)?;
        if let Some(t) = &self.destination.calling_ae_title {
            check_ae_title("destination.calling_ae_title", t)?;
        }
        if self.allowed_calling_ae_titles.is_empty() {
            return Err(CliError::Usage(
                "allowed_calling_ae_titles is empty: no peer could send (list the AE titles, or \
                 [\"*\"] to accept any)"
                    .into(),
            ));
        }
        for t in &self.allowed_calling_ae_titles {
            if t != "*" {
                check_ae_title("allowed_calling_ae_titles", t)?;
            }
        }
        for r in &self.routes {
            if let Some(t) = &r.called_ae_title {
                check_ae_title("routes.called_ae_title", t)?;
            }
        }
        if self.queue.is_some() && self.destination.tls.is_some() {
            return Err(CliError::Usage(
                "[destination.tls] with [queue]: workers send the results and do not take TLS \
                 settings yet; use one or the other"
                    .into(),
            ));
        }
        if self.queue.is_some() && self.deid.as_ref().is_some_and(|d| d.shared_dir.is_none()) {
            return Err(CliError::Usage(
                "[deid] with [queue] needs shared_dir: the folder the workers see, where only \
                 pseudonymised series go (the spool holds the originals)"
                    .into(),
            ));
        }
        if self.max_associations == 0 || self.max_associations > 1024 {
            return Err(CliError::Usage(
                "max_associations must be between 1 and 1024".into(),
            ));
        }
        if !(self.series_idle_seconds.is_finite()
            && (0.1..=86_400.0).contains(&self.series_idle_seconds))
        {
            return Err(CliError::Usage(
                "series_idle_seconds must be between 0.1 and 86400".into(),
            ));
        }
        if !(self.destination.retry_seconds.is_finite()
            && (0.01..=3600.0).contains(&self.destination.retry_seconds))
        {
            return Err(CliError::Usage(
                "destination.retry_seconds must be between 0.01 and 3600".into(),
            ));
        }
        Ok(())
    }

    /// Whether `calling` may associate.
    pub fn allows(&self, calling: &str) -> bool {
        let calling = calling.trim();
        self.allowed_calling_ae_titles
            .iter()
            .any(|t| t == "*" || t.trim() == calling)
    }

    /// The called AE titles the gateway answers to: its own and the routes'.
    pub fn called_titles(&self) -> Vec<String> {
        let mut v = vec![self.ae_title.trim().to_string()];
        for r in &self.routes {
            if let Some(t) = &r.called_ae_title {
                v.push(t.trim().to_string());
            }
        }
        v
    }

    /// The model package for a series.
    pub fn route(
        &self,
        called: &str,
        series_description: &str,
        body_part: &str,
    ) -> Option<&PathBuf> {
        self.routes
            .iter()
            .find(|r| {
                r.called_ae_title
                    .as_deref()
                    .is_none_or(|t| t.trim() == called.trim())
                    && r.series_description_contains.as_deref().is_none_or(|s| {
                        series_description
                            .to_lowercase()
                            .contains(&s.to_lowercase())
                    })
                    && r.body_part
                        .as_deref()
                        .is_none_or(|b| b.trim().eq_ignore_ascii_case(body_part.trim()))
            })
            .map(|r| &r.model)
            .or(self.model.as_ref())
    }

    /// Our calling AE title towards the destination.
    pub fn calling_title(&self) -> &str {
        self.destination
            .calling_ae_title
            .as_deref()
            .unwrap_or(&self.ae_title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> CliResult<GatewayConfig> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gateway.toml");
        std::fs::write(&p, text).unwrap();
        GatewayConfig::load(&p)
    }

    const BASE: &str = r#"
ae_title = "AUTOCONTOUR"
listen = "127.0.0.1:11112"
allowed_calling_ae_titles = ["STORESCU", "PACS"]
spool = "spool"
[destination]
ae_title = "PACS"
host = "127.0.0.1"
port = 4242
"#;

    #[test]
    fn a_minimal_configuration_loads_with_defaults() {
        let c = config(BASE).unwrap();
        assert_eq!(c.max_associations, 8);
        assert!(c.spool.is_absolute());
        assert!(c.allows("STORESCU") && c.allows("PACS ") && !c.allows("OTHER"));
        assert_eq!(c.calling_title(), "AUTOCONTOUR");
    }

    #[test]
    fn routes_match_in_order_and_fall_back_to_the_default_model() {
        let text = r#"
ae_title = "AUTOCONTOUR"
listen = "127.0.0.1:11112"
allowed_calling_ae_titles = ["STORESCU"]
spool = "spool"
model = "default"
[[routes]]
called_ae_title = "AC_HN"
model = "hn"
[[routes]]
body_part = "chest"
series_description_contains = "lung"
model = "thorax"
[destination]
ae_title = "PACS"
host = "127.0.0.1"
port = 4242
"#;
        let c = config(text).unwrap();
        let name = |p: Option<&PathBuf>| {
            p.and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        };
        assert_eq!(name(c.route("AC_HN", "", "")).as_deref(), Some("hn"));
        assert_eq!(
            name(c.route("AUTOCONTOUR", "Lung 1mm", "CHEST")).as_deref(),
            Some("thorax")
        );
        assert_eq!(
            name(c.route("AUTOCONTOUR", "Abdomen", "CHEST")).as_deref(),
            Some("default")
        );
        assert_eq!(c.called_titles(), ["AUTOCONTOUR", "AC_HN"]);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let e = config(&BASE.replace("[\"STORESCU\", \"PACS\"]", "[]")).unwrap_err();
        assert!(e.to_string().contains("allowed_calling_ae_titles"), "{e}");
        let e = config(&BASE.replace("\"AUTOCONTOUR\"", "\"A\\\\B\"")).unwrap_err();
        assert!(e.to_string().contains("not an AE title"), "{e}");
        let e = config(&format!("{BASE}unknown = 1\n")).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
    }
}
