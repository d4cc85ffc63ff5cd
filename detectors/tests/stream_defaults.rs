//! Millwatch's defaults against river's on the conformance streams: with Millwatch's defaults
//! no alarm on `stable` and `error_rate_stable`, while `mean_shift` (N(0,1) → N(1.5,1) at index
//! 2000) and `error_rate_jump` (5 % → 25 % errors at index 2500) are still caught within a
//! stated delay. Detection delays are printed (`--nocapture`).

use std::path::PathBuf;

use millwatch_detectors::stream::{
    AdwinConfig, ChangeDetector, DdmConfig, DetectorConfig, EddmConfig, HddmAConfig, KswinConfig,
    PageHinkleyConfig, Signal,
};

/// First index of the new regime in `mean_shift.txt`.
const MEAN_SHIFT_AT: usize = 2000;
/// First index of the new regime in `error_rate_jump.txt`.
const ERROR_JUMP_AT: usize = 2500;

fn stream(name: &str) -> Vec<f64> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/streams/{name}.txt"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

fn drifts(config: &DetectorConfig, xs: &[f64]) -> Vec<usize> {
    let mut d = config.build().unwrap();
    xs.iter()
        .enumerate()
        .filter(|&(_, &x)| d.update(x) == Signal::Drift)
        .map(|(i, _)| i)
        .collect()
}

/// Checks a detector with Millwatch's defaults: silent on `stable`, and on `shifted` its first
/// drift comes after `change_at` and no later than `max_delay` after it.
fn check(
    name: &str,
    config: DetectorConfig,
    stable: &str,
    shifted: &str,
    change_at: usize,
    max_delay: usize,
) {
    let on_stable = drifts(&config, &stream(stable));
    let on_shift = drifts(&config, &stream(shifted));
    let first = on_shift.first().copied();
    println!(
        "{name:12} {stable}: {} alarms · {shifted}: drifts {on_shift:?}, delay {:?} (bound {max_delay})",
        on_stable.len(),
        first.map(|f| f as i64 - change_at as i64)
    );
    assert!(
        on_stable.is_empty(),
        "{name} alarms on {stable}: {on_stable:?}"
    );
    let first = first.unwrap_or_else(|| panic!("{name} misses the change in {shifted}"));
    assert!(
        first >= change_at,
        "{name} false alarm at {first} before the change"
    );
    assert!(
        first - change_at <= max_delay,
        "{name} delay {}",
        first - change_at
    );
}

#[test]
fn millwatch_defaults_are_silent_on_stable_streams_and_catch_the_changes() {
    use DetectorConfig as C;
    // Measured delays: PageHinkley 19, ADWIN 47, KSWIN 18, DDM 183, EDDM 207, HDDM_A 156;
    // the bounds leave room for other data with the same shift.
    check(
        "PageHinkley",
        C::PageHinkley(PageHinkleyConfig::default()),
        "stable",
        "mean_shift",
        MEAN_SHIFT_AT,
        50,
    );
    check(
        "ADWIN",
        C::Adwin(AdwinConfig::default()),
        "stable",
        "mean_shift",
        MEAN_SHIFT_AT,
        100,
    );
    check(
        "KSWIN",
        C::Kswin(KswinConfig::default()),
        "stable",
        "mean_shift",
        MEAN_SHIFT_AT,
        100,
    );
    check(
        "DDM",
        C::Ddm(DdmConfig::default()),
        "error_rate_stable",
        "error_rate_jump",
        ERROR_JUMP_AT,
        250,
    );
    check(
        "EDDM",
        C::Eddm(EddmConfig::default()),
        "error_rate_stable",
        "error_rate_jump",
        ERROR_JUMP_AT,
        300,
    );
    check(
        "HDDM_A",
        C::HddmA(HddmAConfig::default()),
        "error_rate_stable",
        "error_rate_jump",
        ERROR_JUMP_AT,
        200,
    );
}

#[test]
fn river_defaults_alarm_where_millwatch_defaults_do_not() {
    // The reason for changing the defaults: river's raise alarms on the stable streams.
    let ph = drifts(
        &DetectorConfig::PageHinkley(PageHinkleyConfig::river()),
        &stream("stable"),
    );
    let ddm = drifts(
        &DetectorConfig::Ddm(DdmConfig::river()),
        &stream("error_rate_stable"),
    );
    let eddm = drifts(
        &DetectorConfig::Eddm(EddmConfig::river()),
        &stream("error_rate_stable"),
    );
    let kswin = drifts(
        &DetectorConfig::Kswin(KswinConfig::river()),
        &stream("stable"),
    );
    println!(
        "river defaults: PageHinkley {} alarms on stable, DDM {}, EDDM {} on error_rate_stable, KSWIN {} on stable",
        ph.len(),
        ddm.len(),
        eddm.len(),
        kswin.len()
    );
    assert_eq!((ph.len(), ddm.len(), eddm.len()), (14, 1, 11));
    assert!(!kswin.is_empty());
}

/// SplitMix64 → uniform (0, 1).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

#[test]
fn false_alarm_rate_on_seeded_in_control_streams() {
    // 40 streams of 4000 points per detector, each with its own scale or error rate.
    let mut rng = Rng(2024);
    let runs = 40;
    let mut report = |name: &str, config: DetectorConfig, binary: bool, bound: f64| {
        let mut alarms = 0;
        for r in 0..runs {
            let p = [0.02, 0.05, 0.1, 0.2][r % 4];
            let scale = [0.01, 1.0, 50.0, 1e4][r % 4];
            let xs: Vec<f64> = (0..4000)
                .map(|_| {
                    if binary {
                        f64::from(u8::from(rng.uniform() < p))
                    } else {
                        5.0 + scale * rng.normal()
                    }
                })
                .collect();
            alarms += drifts(&config, &xs).len();
        }
        let rate = alarms as f64 / runs as f64;
        println!("{name:12} {rate:.3} false alarms per 4000 in-control points (bound {bound})");
        assert!(rate <= bound, "{name}: {rate}");
    };
    use DetectorConfig as C;
    report(
        "PageHinkley",
        C::PageHinkley(PageHinkleyConfig::default()),
        false,
        0.1,
    );
    report("ADWIN", C::Adwin(AdwinConfig::default()), false, 0.1);
    report("KSWIN", C::Kswin(KswinConfig::default()), false, 0.5);
    report("DDM", C::Ddm(DdmConfig::default()), true, 0.5);
    report("EDDM", C::Eddm(EddmConfig::default()), true, 0.5);
    report("HDDM_A", C::HddmA(HddmAConfig::default()), true, 0.2);
}
