//! Model packages: `model.onnx` + `model.json` (schema documented in `models/MANIFEST.md`), loaded
//! into an ONNX Runtime session on the execution provider the caller chose.
//!
//! Loading checks, in order: the manifest parses and is self-consistent, the ONNX file's SHA-256
//! matches the manifest, ONNX Runtime loads it, and the graph agrees with the manifest (tensor
//! names, rank 5, one input channel, output channels = labels, element types). Each failure is a
//! named [`Error`](crate::Error).
//!
//! Four parts: [`manifest`] (the `model.json` schema), [`rules`] (its plausibility and
//! applicability rules), [`device`] (execution providers and fallback), [`session`] (loading and
//! checking the package into ONNX Runtime).

pub mod bundle;
pub mod device;
pub mod manifest;
pub mod rules;
pub mod session;

pub use device::*;
pub use manifest::*;
pub use rules::*;
pub use session::*;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::Error;

    fn sample() -> String {
        r#"{
          "schema_version": 1, "name": "t", "version": "1",
          "onnx": {"file": "model.onnx", "sha256": "00000000000000000000000000000000000000000000000000000000000000aa",
                   "input": "image", "output": "logits", "dtype": "float32"},
          "orientation": "LPS", "spacing_mm": [4.0, 4.0, 4.0],
          "normalization": {"kind": "ct_window", "level": 50, "width": 600, "range": [-1, 1]},
          "patch_size": [8, 8, 8], "tile_step": 0.5, "blending": "gaussian", "mirror_axes": [],
          "output_kind": "logits", "resample_output": "logits_linear",
          "labels": [{"index": 0, "name": "Background"},
                     {"index": 1, "name": "External", "rt_roi_type": "EXTERNAL", "fill_holes": "2d"}]
        }"#
        .to_string()
    }

    #[test]
    fn parses_and_normalises() {
        let m = Manifest::parse(&sample(), Path::new("model.json")).unwrap();
        assert_eq!(m.labels[1].fill_holes, FillHoles::TwoD);
        assert_eq!(m.labels[1].connectivity, 6);
        assert_eq!(m.spacing_mm, Spacing::Mm([4.0, 4.0, 4.0]));
        // InnerEye window: level 50, width 600 -> [-250, 350] -> [-1, 1]
        assert_eq!(m.normalization.apply(-1000.0), -1.0);
        assert_eq!(m.normalization.apply(50.0), 0.0);
        assert_eq!(m.normalization.apply(350.0), 1.0);
        assert_eq!(m.normalization.apply(2000.0), 1.0);
        let z = Normalization::CtZscore {
            clip: [-1000.0, 1000.0],
            mean: 100.0,
            std: 50.0,
        };
        assert_eq!(z.apply(200.0), 2.0);
        assert_eq!(z.apply(5000.0), 18.0);
        assert_eq!(z.apply(-5000.0), -22.0);
        // Bounds that `Manifest::parse` refuses, built by hand: clipped at the lower bound
        // first (no panic, unlike `f64::clamp`).
        let reversed = Normalization::CtZscore {
            clip: [1000.0, -1000.0],
            mean: 0.0,
            std: 1.0,
        };
        assert_eq!(reversed.apply(0.0), 1000.0);
        let nan = Normalization::CtZscore {
            clip: [f64::NAN, 1000.0],
            mean: 0.0,
            std: 1.0,
        };
        assert_eq!(nan.apply(5000.0), 1000.0);
    }

    #[test]
    fn native_spacing_parses() {
        let s = sample().replace("[4.0, 4.0, 4.0]", "\"native\"");
        let m = Manifest::parse(&s, Path::new("model.json")).unwrap();
        assert_eq!(m.spacing_mm, Spacing::Native(NativeTag::Native));
    }

    #[test]
    fn rejects_inconsistent_manifests() {
        for (from, to) in [
            ("\"schema_version\": 1", "\"schema_version\": 2"),
            ("\"tile_step\": 0.5", "\"tile_step\": 0"),
            ("[8, 8, 8]", "[8, 0, 8]"),
            ("\"index\": 1", "\"index\": 2"),
            ("\"mirror_axes\": []", "\"mirror_axes\": [3]"),
            ("\"width\": 600", "\"width\": 0"),
            ("\"blending\": \"gaussian\"", "\"blending\": \"mean\""),
            ("\"version\": \"1\",", "\"version\": \"1\", \"extra\": 1,"),
            ("\"name\": \"External\"", "\"name\": \"Ext\\\\ernal\""),
            (
                "\"name\": \"External\"",
                "\"name\": \"External\", \"code\": {\"scheme\": \"FMA\", \"value\": \"12345678901234567\", \"meaning\": \"x\"}",
            ),
            ("\"tile_step\": 0.5", "\"tile_step\": 0.01"),
        ] {
            let s = sample().replace(from, to);
            assert_ne!(s, sample(), "{from}");
            let e = Manifest::parse(&s, Path::new("model.json")).unwrap_err();
            assert!(matches!(e, Error::InvalidManifest { .. }), "{from}: {e}");
        }
    }

    /// A manifest that does not parse keeps serde_json's error as the source; one that parses
    /// but is inconsistent has none.
    #[test]
    fn unparsable_manifest_keeps_its_cause() {
        use std::error::Error as _;
        let e = Manifest::parse("{ not json", Path::new("model.json")).unwrap_err();
        let source = e.source().expect("the JSON error");
        assert!(source.downcast_ref::<serde_json::Error>().is_some(), "{e}");
        let s = sample().replace("\"tile_step\": 0.5", "\"tile_step\": 0");
        let e = Manifest::parse(&s, Path::new("model.json")).unwrap_err();
        assert!(e.source().is_none(), "{e}");
    }

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("CUDA:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert_eq!("tensorrt:2".parse::<Device>().unwrap(), Device::TensorRt(2));
        assert!("tpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
