//! Cuts a fuzz input into up to three buffers at `FF FE FF FE` markers (the seeds join real
//! slices with them), so several mutated files meet in one call.

/// Up to three parts of `data`, cut at the first two markers.
pub fn three_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while parts.len() < 2 {
        match rest.windows(4).position(|w| w == [0xFF, 0xFE, 0xFF, 0xFE]) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + 4..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}
