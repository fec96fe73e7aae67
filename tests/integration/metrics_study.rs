//! Study statistics against scipy (Mann-Whitney U, exact and asymptotic), sklearn (Cohen's
//! kappa), statsmodels (Fleiss' kappa) and numpy (Bland-Altman; box-plot quartiles and
//! whiskers, `metrics::study::box_stats`) on fixed inputs, run through
//! `tests/python/study_reference.py` under target/pyenv.

use autocontour_test_support as common;

use std::process::Command;

use autocontour::metrics::study::box_stats;
use autocontour::metrics::study::{
    MwuMethod, bland_altman, cohen_kappa, fleiss_kappa_masks, majority_vote, mann_whitney_u,
};
use serde_json::{Value, json};

fn rel(what: &str, ours: f64, theirs: &Value) {
    let t = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {theirs}"));
    assert!(
        (ours - t).abs() <= 1e-9 * t.abs().max(1e-300) || (ours - t).abs() < 1e-14,
        "{what}: ours {ours} vs reference {t}"
    );
}

fn pattern(n: usize, seed: u64, permille: u64) -> Vec<u8> {
    let mut r = autocontour_test_support::XorShift::new(seed);
    (0..n).map(|_| u8::from(r.below(1000) < permille)).collect()
}

#[test]
fn statistics_match_scipy_sklearn_statsmodels() {
    // Mann-Whitney: small without ties (exact by default), small with ties, larger samples
    // with and without ties (Dice scores of two sites), one very unbalanced pair.
    let mwu: Vec<(Vec<f64>, Vec<f64>)> = vec![
        (
            vec![0.91, 0.87, 0.78, 0.95],
            vec![0.81, 0.72, 0.84, 0.69, 0.88],
        ),
        (vec![1.0, 2.0, 2.0, 3.0, 5.0], vec![2.0, 4.0, 4.0, 6.0]),
        (
            vec![
                0.912, 0.884, 0.861, 0.93, 0.902, 0.877, 0.915, 0.889, 0.925, 0.871, 0.9, 0.893,
            ],
            vec![
                0.853, 0.871, 0.842, 0.899, 0.861, 0.83, 0.868, 0.881, 0.845, 0.876,
            ],
        ),
        (
            (0..30).map(|i| ((i * 7) % 11) as f64).collect(),
            (0..25).map(|i| ((i * 5) % 9) as f64 + 1.0).collect(),
        ),
        (vec![3.5], (0..20).map(|i| i as f64 * 0.5).collect()),
    ];
    let n = 4000;
    let a = pattern(n, 3, 400);
    let b: Vec<u8> = a
        .iter()
        .zip(pattern(n, 11, 120))
        .map(|(&x, flip)| x ^ flip)
        .collect();
    let c: Vec<u8> = a
        .iter()
        .zip(pattern(n, 29, 200))
        .map(|(&x, flip)| x ^ flip)
        .collect();
    let roi = pattern(n, 5, 600);
    let labels_a: Vec<u8> = pattern(n, 7, 500)
        .iter()
        .zip(pattern(n, 8, 300))
        .map(|(x, y)| x + 2 * y)
        .collect();
    let labels_b: Vec<u8> = labels_a
        .iter()
        .zip(pattern(n, 9, 150))
        .map(|(&x, f)| if f == 1 { (x + 1) % 4 } else { x })
        .collect();
    let ba = (
        vec![41.2, 55.0, 12.7, 80.3, 33.3, 21.9, 64.4, 47.5],
        vec![39.8, 57.1, 13.9, 76.0, 35.2, 20.1, 66.0, 45.0],
    );
    // Box plots: Dice and HD95-like samples, with ties, an outlier each side, an infinite value.
    let boxes: Vec<Vec<f64>> = vec![
        vec![0.91, 0.87, 0.78, 0.95, 0.93, 0.89, 0.9, 0.41, 0.92],
        vec![
            3.1,
            2.5,
            2.5,
            4.0,
            19.5,
            2.8,
            3.3,
            f64::INFINITY,
            2.9,
            3.0,
            0.2,
        ],
        vec![1.0, 2.0],
        vec![5.0],
        (0..37).map(|i| ((i * 13) % 17) as f64 * 0.37).collect(),
    ];
    let spec = json!({
        "mwu": mwu.iter().map(|(x, y)| json!({"x": x, "y": y})).collect::<Vec<_>>(),
        "cohen": [
            {"a": a, "b": b, "roi": null},
            {"a": a, "b": c, "roi": roi},
            {"a": labels_a, "b": labels_b, "roi": null},
        ],
        "fleiss": [
            {"masks": [a, b, c], "roi": null},
            {"masks": [a, b, c, b], "roi": roi},
        ],
        "bland_altman": [{"a": ba.0, "b": ba.1}],
        // JSON has no infinity: `null` stands for one (left out by both sides).
        "box": boxes.iter().map(|v| v.iter().map(|x| x.is_finite().then_some(*x)).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("study.json");
    std::fs::write(&input, spec.to_string()).unwrap();
    let script = common::root().join("tests/python/study_reference.py");
    let out = Command::new(common::python())
        .arg(script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    for (i, (x, y)) in mwu.iter().enumerate() {
        for (name, m) in [
            ("auto", MwuMethod::Auto),
            ("exact", MwuMethod::Exact),
            ("asymptotic", MwuMethod::Asymptotic),
        ] {
            let ours = mann_whitney_u(x, y, m).unwrap();
            let theirs = &r["mwu"][i][name];
            rel(&format!("mwu {i} {name} U1"), ours.u1, &theirs["u1"]);
            rel(&format!("mwu {i} {name} p"), ours.p_value, &theirs["p"]);
            assert!((ours.common_language - ours.u1 / (x.len() * y.len()) as f64).abs() < 1e-15);
        }
    }
    // The exact method is chosen for small samples without ties, as scipy does.
    assert_eq!(
        mann_whitney_u(&mwu[0].0, &mwu[0].1, MwuMethod::Auto)
            .unwrap()
            .method,
        MwuMethod::Exact
    );
    assert_eq!(
        mann_whitney_u(&mwu[1].0, &mwu[1].1, MwuMethod::Auto)
            .unwrap()
            .method,
        MwuMethod::Asymptotic
    );

    rel(
        "cohen 0",
        cohen_kappa(&a, &b, None).unwrap(),
        &r["cohen"][0],
    );
    rel(
        "cohen roi",
        cohen_kappa(&a, &c, Some(&roi)).unwrap(),
        &r["cohen"][1],
    );
    rel(
        "cohen labels",
        cohen_kappa(&labels_a, &labels_b, None).unwrap(),
        &r["cohen"][2],
    );
    rel(
        "fleiss 3",
        fleiss_kappa_masks(&[&a, &b, &c], None).unwrap(),
        &r["fleiss"][0],
    );
    rel(
        "fleiss 4 roi",
        fleiss_kappa_masks(&[&a, &b, &c, &b], Some(&roi)).unwrap(),
        &r["fleiss"][1],
    );
    let ours = bland_altman(&ba.0, &ba.1).unwrap();
    let theirs = &r["bland_altman"][0];
    rel("bias", ours.bias, &theirs["bias"]);
    rel("sd", ours.sd, &theirs["sd"]);
    rel("lower", ours.lower_loa, &theirs["lower"]);
    rel("upper", ours.upper_loa, &theirs["upper"]);

    for (i, v) in boxes.iter().enumerate() {
        let ours = box_stats(v).unwrap();
        let theirs = &r["box"][i];
        assert_eq!(ours.n as u64, theirs["n"].as_u64().unwrap(), "box {i} n");
        rel(&format!("box {i} q1"), ours.q1, &theirs["q1"]);
        rel(&format!("box {i} median"), ours.median, &theirs["median"]);
        rel(&format!("box {i} q3"), ours.q3, &theirs["q3"]);
        rel(
            &format!("box {i} lower whisker"),
            ours.lower_whisker,
            &theirs["lower"],
        );
        rel(
            &format!("box {i} upper whisker"),
            ours.upper_whisker,
            &theirs["upper"],
        );
        let outliers: Vec<f64> = serde_json::from_value(theirs["outliers"].clone()).unwrap();
        assert_eq!(ours.outliers, outliers, "box {i} outliers");
    }

    // Majority vote of three observers against numpy-free counting: a voxel is in when ≥ 2 say so.
    let mv = majority_vote(&[&a, &b, &c]).unwrap();
    for v in 0..n {
        assert_eq!(mv[v], u8::from(a[v] + b[v] + c[v] >= 2));
    }
}
