//! The simulated plant: lines of machines whose sensors read like the AI4I 2020 predictive
//! maintenance data set (air and process temperature in K, rotational speed in rpm, torque in
//! N·m, tool wear in minutes), with vibration and spindle current added, and the faults the
//! script injects into them. Everything is drawn from one seeded generator in a fixed order, so
//! a seed always gives the same plant.

use fastrand::Rng;

/// The lines of the plant, as `site.line` names them.
pub const LINES: [&str; 3] = ["line-a", "line-b", "line-c"];
/// Machines on each line.
pub const MACHINES_PER_LINE: usize = 4;
/// A tool is replaced once it has worn this many minutes (AI4I's tools fail between 200 and 240).
pub const TOOL_LIFE_MIN: f64 = 240.0;
/// What a saturated temperature transmitter reads (the 16-bit full scale of 0.1 K steps).
pub const OUT_OF_RANGE_K: f64 = 3276.7;
/// Tools in each machine's magazine.
pub const TOOLS: usize = 24;
/// The plant's regulated ambient temperature (K) and its process temperature, 10 K above it.
const AMBIENT_K: f64 = 298.5;
const PROCESS_K: f64 = AMBIENT_K + 10.0;

/// One machine and the state that carries from one part to the next.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `a-1`, `b-3`, ...: the machine's `hw.id` and (prefixed `mill-`) its `host.name`.
    pub id: String,
    /// Index into [`LINES`].
    pub line: usize,
    /// Minutes each tool of the machine's magazine has worked; a part is made with one of
    /// them, and a worn tool is replaced by a new one.
    magazine: Vec<f64>,
}

impl Machine {
    pub fn host_name(&self) -> String {
        format!("mill-{}", self.id)
    }
}

/// The state a machine reports on `hw.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    Ok,
    Degraded,
}

impl MachineState {
    pub const ALL: [MachineState; 2] = [MachineState::Ok, MachineState::Degraded];
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Ok => "ok",
            MachineState::Degraded => "degraded",
        }
    }
}

/// What one machine's sensors read for one part.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The line's ambient sensor; `None` while it sends nothing.
    pub air_temperature: Option<f64>,
    pub process_temperature: f64,
    pub rotational_speed: f64,
    pub torque: f64,
    pub tool_wear: f64,
    pub vibration: f64,
    pub spindle_current: f64,
    pub state: MachineState,
}

/// A fault of a line's ambient (air temperature) sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirSensorFault {
    /// It sends no value.
    Silent,
    /// It sends its full-scale value, [`OUT_OF_RANGE_K`].
    Saturated,
}

/// The faults in effect, as the script sets them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Lines whose vibration and spindle-current sensors were recalibrated (read higher).
    pub recalibrated: Vec<usize>,
    /// A line whose air sensor is faulty.
    pub air_sensor: Option<(usize, AirSensorFault)>,
    /// A machine (index into [`Plant::machines`]) overheating, and for how many parts so far.
    pub overheating: Option<(usize, u32)>,
}

/// Kelvin the overheating machine's process gains per part, and at most.
const OVERHEAT_STEP_K: f64 = 0.15;
const OVERHEAT_MAX_K: f64 = 12.0;

/// The plant: its machines, their faults and the generator everything is drawn from.
pub struct Plant {
    pub machines: Vec<Machine>,
    pub faults: Faults,
    rng: Rng,
}

impl Plant {
    pub fn new(seed: u64) -> Plant {
        let rng = Rng::with_seed(seed);
        let count = LINES.len() * MACHINES_PER_LINE;
        // Every machine alike, so that any line's parts are distributed as the whole plant's
        // until an incident says otherwise.
        let machines = (0..count)
            .map(|i| {
                let line = i / MACHINES_PER_LINE;
                Machine {
                    id: format!("{}-{}", &LINES[line][5..], i % MACHINES_PER_LINE + 1),
                    line,
                    // Tools at evenly staggered points of their life.
                    magazine: (0..TOOLS)
                        .map(|t| {
                            TOOL_LIFE_MIN * (t as f64 + i as f64 / count as f64) / TOOLS as f64
                        })
                        .collect(),
                }
            })
            .collect();
        Plant {
            machines,
            faults: Faults::default(),
            rng,
        }
    }

    /// The index of the machine `id`.
    pub fn machine(&self, id: &str) -> Option<usize> {
        self.machines.iter().position(|m| m.id == id)
    }

    /// Every machine makes one part: one reading each, in machine order.
    pub fn step(&mut self) -> Vec<Reading> {
        if let Some((_, parts)) = &mut self.faults.overheating {
            *parts += 1;
        }
        let mut out = Vec::with_capacity(self.machines.len());
        for i in 0..self.machines.len() {
            out.push(self.read(i));
        }
        out
    }

    fn read(&mut self, i: usize) -> Reading {
        let rng = &mut self.rng;
        let line = self.machines[i].line;
        // AI4I: air temperature around 300 K; process temperature 10 K above it. Sensor noise
        // is bounded (uniform), as a transmitter's quantised reading is.
        let air = AMBIENT_K + bounded(rng, 0.3);
        let mut process = PROCESS_K + bounded(rng, 0.5);
        // Rotational speed from a nominal power of 2860 W, torque around 40 N·m.
        let rotational_speed = normal(rng, 1540.0, 120.0).clamp(1170.0, 2100.0);
        let torque = normal(rng, 40.0, 8.0).clamp(5.0, 75.0);
        // Tool wear: 2, 3 or 5 minutes per part for low, medium and high quality variants.
        let variant = [2.0, 3.0, 5.0][rng.usize(0..3)];
        let tool = &mut self.machines[i].magazine[rng.usize(0..TOOLS)];
        *tool += variant;
        if *tool >= TOOL_LIFE_MIN {
            *tool -= TOOL_LIFE_MIN;
        }
        let tool_wear = *tool;
        let mut vibration =
            2.0 + 0.03 * (torque - 40.0) + 0.004 * tool_wear + normal(rng, 0.0, 0.25);
        let power_kw = torque * rotational_speed / 9549.0;
        let mut spindle_current = 2.0 + 1.7 * power_kw + normal(rng, 0.0, 0.2);
        if self.faults.recalibrated.contains(&line) {
            // The new calibration reads vibration a third higher and the current 1.5 A higher.
            vibration = vibration * 1.35 + 0.5;
            spindle_current += 1.5;
        }
        let mut state = MachineState::Ok;
        if let Some((m, parts)) = self.faults.overheating
            && m == i
        {
            let extra = (OVERHEAT_STEP_K * f64::from(parts)).min(OVERHEAT_MAX_K);
            process += extra;
            if extra > 5.0 {
                state = MachineState::Degraded;
            }
        }
        let air_temperature = match self.faults.air_sensor {
            Some((l, AirSensorFault::Silent)) if l == line => None,
            Some((l, AirSensorFault::Saturated)) if l == line => Some(OUT_OF_RANGE_K),
            _ => Some(air),
        };
        Reading {
            air_temperature,
            process_temperature: process,
            rotational_speed,
            torque,
            tool_wear,
            vibration: vibration.max(0.1),
            spindle_current,
            state,
        }
    }
}

/// Uniform in `[-half, half]`.
pub fn bounded(rng: &mut Rng, half: f64) -> f64 {
    (rng.f64() * 2.0 - 1.0) * half
}

/// Normal by Box–Muller.
pub fn normal(rng: &mut Rng, mean: f64, sd: f64) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_one_plant() {
        let (mut a, mut b, mut c) = (Plant::new(7), Plant::new(7), Plant::new(8));
        for _ in 0..50 {
            assert_eq!(a.step(), b.step());
        }
        assert_ne!(a.step(), c.step());
    }

    #[test]
    fn readings_stay_in_their_ranges_while_calm() {
        let mut p = Plant::new(1);
        for _ in 0..500 {
            for r in p.step() {
                let air = r.air_temperature.expect("no fault");
                assert!((AMBIENT_K - 0.3..=AMBIENT_K + 0.3).contains(&air), "{air}");
                assert!((r.process_temperature - PROCESS_K).abs() <= 0.5);
                assert!((0.0..TOOL_LIFE_MIN).contains(&r.tool_wear));
                assert_eq!(r.state, MachineState::Ok);
            }
        }
    }

    #[test]
    fn faults_change_only_what_they_name() {
        let mut calm = Plant::new(3);
        let mut faulty = Plant::new(3);
        faulty.faults.recalibrated = vec![0];
        faulty.faults.air_sensor = Some((2, AirSensorFault::Silent));
        let b3 = faulty.machine("b-3").expect("b-3");
        faulty.faults.overheating = Some((b3, 60));
        let (c, f) = (calm.step(), faulty.step());
        for (i, (c, f)) in c.iter().zip(&f).enumerate() {
            let line = i / MACHINES_PER_LINE;
            assert_eq!(f.vibration > c.vibration, line == 0, "machine {i}");
            assert_eq!(f.spindle_current > c.spindle_current, line == 0);
            assert_eq!(f.air_temperature.is_none(), line == 2);
            assert_eq!(f.process_temperature > c.process_temperature + 5.0, i == b3);
            assert_eq!(f.state == MachineState::Degraded, i == b3);
            assert_eq!((f.torque, f.tool_wear), (c.torque, c.tool_wear));
        }
    }
}
