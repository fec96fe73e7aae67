//! plastimatch's output format.

use std::path::Path;

/// Minimal MetaImage reader for plastimatch's uncompressed `.mha` output.
pub fn read_mha(path: &Path) -> (Vec<usize>, Vec<f64>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = 0;
    let (mut dims, mut offset, mut etype) = (Vec::new(), Vec::new(), String::new());
    loop {
        let end = bytes[pos..].iter().position(|&b| b == b'\n').unwrap() + pos;
        let line = String::from_utf8_lossy(&bytes[pos..end]).into_owned();
        pos = end + 1;
        let (k, v) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap();
        match k {
            "DimSize" => dims = v.split_whitespace().map(|x| x.parse().unwrap()).collect(),
            "Offset" => offset = v.split_whitespace().map(|x| x.parse().unwrap()).collect(),
            "ElementType" => etype = v.to_string(),
            "CompressedData" => assert_eq!(v, "False", "{}", path.display()),
            "TransformMatrix" => {
                let m: Vec<f64> = v.split_whitespace().map(|x| x.parse().unwrap()).collect();
                assert_eq!(m, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
            }
            "ElementDataFile" => {
                assert_eq!(v, "LOCAL");
                break;
            }
            _ => {}
        }
    }
    assert_eq!(etype, "MET_UCHAR", "{}", path.display());
    (dims, offset, bytes[pos..].to_vec())
}
