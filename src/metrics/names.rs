//! Structure-name matching: which ROI of one structure set is which ROI of another.
//!
//! [`structure_key`] turns an ROI name into a canonical key; two names match when their keys are
//! equal. The rule:
//!
//! 1. Split the name into words at spaces, underscores, hyphens, dots, slashes and at
//!    lower-to-upper case changes (`LungLeft` → `Lung Left`), then lower-case every word.
//! 2. Laterality words are taken out wherever they stand: `l`, `lt`, `left` → left; `r`, `rt`,
//!    `right` → right (`Lung_L`, `Left Lung`, `LungLeft`, `L Lung`, `Lung Lt` are all left lung).
//! 3. The remaining words are joined without separators and looked up in the alias table below;
//!    a name not in the table keeps its joined form (`GTVp_test_man` → `gtvptestman`).
//! 4. The key is the base name, plus `_l` or `_r` when a laterality word was found.
//!
//! | key base | aliases (after step 1–3) |
//! |---|---|
//! | `external` | external, body, skin, bodycontour, outline, patient, externalcontour |
//! | `spinalcord` | spinalcord, cord, spinecord, spinalcanal |
//! | `lung` | lung (with laterality: `lung_l`, `lung_r`) |
//! | `lungs` | lungs, lungtotal, totallung, lungsbilateral, bothlungs, lungboth, lunglr |
//! | `heart` | heart, cor |
//! | `esophagus` | esophagus, oesophagus, esoph, eso |
//! | `trachea` | trachea |
//! | `brainstem` | brainstem |
//! | `liver` | liver |
//! | `kidney` | kidney, kidneys (with laterality) |
//! | `parotid` | parotid, parotidgland (with laterality) |
//! | `femoralhead` | femoralhead, femur, femurhead, headoffemur (with laterality) |
//! | `bladder` | bladder, urinarybladder |
//! | `rectum` | rectum |
//!
//! Matching is deliberately conservative: a name is never matched by prefix or edit distance,
//! so `GTV` and `GTV2` (or `Brainstem` and `Brainstem_PRV`) stay different structures. Callers can always pair names explicitly.

/// The alias table: canonical base, then every joined lower-case spelling that maps to it.
pub const ALIASES: &[(&str, &[&str])] = &[
    (
        "external",
        &[
            "external",
            "body",
            "skin",
            "bodycontour",
            "outline",
            "patient",
            "externalcontour",
        ],
    ),
    (
        "spinalcord",
        &["spinalcord", "cord", "spinecord", "spinalcanal"],
    ),
    ("lung", &["lung"]),
    (
        "lungs",
        &[
            "lungs",
            "lungtotal",
            "totallung",
            "lungsbilateral",
            "bothlungs",
            "lungboth",
            "lunglr",
        ],
    ),
    ("heart", &["heart", "cor"]),
    ("esophagus", &["esophagus", "oesophagus", "esoph", "eso"]),
    ("trachea", &["trachea"]),
    ("brainstem", &["brainstem"]),
    ("liver", &["liver"]),
    ("kidney", &["kidney", "kidneys"]),
    ("parotid", &["parotid", "parotidgland"]),
    (
        "femoralhead",
        &["femoralhead", "femur", "femurhead", "headoffemur"],
    ),
    ("bladder", &["bladder", "urinarybladder"]),
    ("rectum", &["rectum"]),
];

/// Splits an ROI name into lower-case words (step 1 of the module rule).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The canonical key of an ROI name (see the module docs). Two ROIs are the same structure when
/// their keys are equal.
pub fn structure_key(name: &str) -> String {
    let mut side = None;
    let mut base = String::new();
    for w in words(name) {
        match w.as_str() {
            "l" | "lt" | "left" => side = Some("_l"),
            "r" | "rt" | "right" => side = Some("_r"),
            _ => base.push_str(&w),
        }
    }
    if base.is_empty() {
        // A name made only of laterality words ("L"): keep it as it is.
        return name.trim().to_lowercase();
    }
    let base = ALIASES
        .iter()
        .find(|(_, spellings)| spellings.contains(&base.as_str()))
        .map_or(base.clone(), |(canon, _)| (*canon).to_string());
    match side {
        Some(s) => base + s,
        None => base,
    }
}

/// True when two ROI names denote the same structure.
pub fn same_structure(a: &str, b: &str) -> bool {
    structure_key(a) == structure_key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lung_spellings_match() {
        for n in [
            "Lung_L",
            "Left Lung",
            "LungLeft",
            "L Lung",
            "lung-l",
            "LUNG L",
            "Lung Lt",
            "LungL",
        ] {
            assert_eq!(structure_key(n), "lung_l", "{n}");
        }
        for n in ["Lung_R", "Right Lung", "LungRight", "R_Lung", "lung rt"] {
            assert_eq!(structure_key(n), "lung_r", "{n}");
        }
        assert!(!same_structure("Lung_L", "Lung_R"));
        assert!(!same_structure("Lung_L", "Lungs"));
    }

    #[test]
    fn aliases_and_plain_names() {
        for n in ["External", "BODY", "Skin", "body contour"] {
            assert_eq!(structure_key(n), "external", "{n}");
        }
        for n in [
            "SpinalCord",
            "Spinal Cord",
            "spinal_cord",
            "Cord",
            "SPINAL-CORD",
        ] {
            assert_eq!(structure_key(n), "spinalcord", "{n}");
        }
        assert!(same_structure("Oesophagus", "Esophagus"));
        assert_eq!(structure_key("GTVp_test_man"), "gtvptestman");
        assert!(!same_structure("GTVp_test_man", "GTVp_test_auto"));
        assert!(!same_structure("GTV", "GTV2"));
        assert_eq!(structure_key("L"), "l");
        assert_eq!(structure_key(""), "");
    }
}
