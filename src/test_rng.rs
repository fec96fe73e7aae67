//! The deterministic generator of the crate's randomised unit tests (the integration tests,
//! benches and CLI use `autocontour_test_support::rng`, which depends on this crate).

/// xorshift64 (shifts 13, 7, 17) from `seed`; the lowest bit is set, so a seed of 0 does not
/// leave it stuck at zero (odd seeds are used as they are).
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
