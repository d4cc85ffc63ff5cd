//! The conformance tolerance that `testdata/drift/*/expected.json` states in
//! `definitions.tolerance`, for the drift tests of the detectors crate and of `millwatch drift`
//! alike (`#[path]`-included by both).

/// `definitions.tolerance` of every expected.json, word for word: a test checks the files say
/// what the constants below do.
pub const DEFINITION: &str = "statistics: 1e-9 absolute or 1e-9 relative; p-values: within 1e-9 \
relative, however small; where scipy reports 0 (underflow), below 1e-300";

/// Statistics: absolute or relative.
pub const STATISTIC: f64 = 1e-9;
/// P-values: relative, however small the reference (scipy's 1e-60 included). The worst the
/// code shows on the five cases is 9.9e-11 (small_no_drift/tool_wear_min/mannwhitney).
pub const P_RELATIVE: f64 = 1e-9;
/// Where scipy's p-value underflows to 0, ours must be below this.
pub const P_UNDERFLOW: f64 = 1e-300;

pub fn statistic_close(got: f64, want: f64) -> bool {
    let diff = (got - want).abs();
    diff <= STATISTIC || diff <= STATISTIC * want.abs()
}

/// The relative error of a p-value (infinite for a non-zero one where scipy reports 0).
pub fn p_relative_error(got: f64, want: f64) -> f64 {
    if want == 0.0 {
        return if got == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (got - want).abs() / want.abs()
}

pub fn p_close(got: f64, want: f64) -> bool {
    if want == 0.0 {
        return (0.0..P_UNDERFLOW).contains(&got);
    }
    p_relative_error(got, want) <= P_RELATIVE
}
