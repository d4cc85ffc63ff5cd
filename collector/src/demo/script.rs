//! The demo's script: a calm start (long enough for every model to gather its baseline and be
//! judged on a few clean windows), then one incident after another, each on its own line or
//! machine so that what Millwatch finds can be told apart.

use std::time::Duration;

use super::plant::{AirSensorFault, LINES, Plant};

/// Plant time between two parts of a machine (and two readings of its sensors).
pub const TICK: Duration = Duration::from_secs(10);

/// What happens to the plant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incident {
    /// The vibration and spindle-current sensors of a line are recalibrated and read higher.
    Recalibration { line: usize },
    /// A line's classifier is replaced by a new version.
    Rollout { line: usize, version: &'static str },
    /// A line's air temperature sensor stops sending values.
    SensorSilent { line: usize },
    /// ... then sends its full-scale value.
    SensorSaturated { line: usize },
    /// ... then is replaced.
    SensorReplaced { line: usize },
    /// A machine's coolant pump fails: its process temperature climbs.
    Overheating { machine: &'static str },
}

/// An incident and when it happens, in plant time after the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub after: Duration,
    pub incident: Incident,
}

impl Scheduled {
    /// The tick at which it takes effect.
    pub fn tick(&self) -> u64 {
        (self.after.as_secs() / TICK.as_secs()).max(1)
    }
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// The plant time before the first incident.
pub const CALM: Duration = minutes(40);

/// The incidents, in order.
pub fn script() -> Vec<Scheduled> {
    let at = |m, incident| Scheduled {
        after: minutes(m),
        incident,
    };
    vec![
        at(40, Incident::Recalibration { line: 0 }),
        at(
            55,
            Incident::Rollout {
                line: 1,
                version: super::models::CLASSIFIER_V2,
            },
        ),
        at(85, Incident::SensorSilent { line: 2 }),
        at(97, Incident::SensorSaturated { line: 2 }),
        at(109, Incident::SensorReplaced { line: 2 }),
        at(115, Incident::Overheating { machine: "b-3" }),
    ]
}

/// The plant time the script needs, with room for the last incident to be seen.
pub const SCRIPT_LENGTH: Duration = minutes(160);

impl Incident {
    /// Applies it to the plant; `rollouts` is each line's classifier version.
    pub fn apply(&self, plant: &mut Plant, rollouts: &mut [&'static str]) {
        match *self {
            Incident::Recalibration { line } => plant.faults.recalibrated.push(line),
            Incident::Rollout { line, version } => rollouts[line] = version,
            Incident::SensorSilent { line } => {
                plant.faults.air_sensor = Some((line, AirSensorFault::Silent))
            }
            Incident::SensorSaturated { line } => {
                plant.faults.air_sensor = Some((line, AirSensorFault::Saturated))
            }
            Incident::SensorReplaced { .. } => plant.faults.air_sensor = None,
            Incident::Overheating { machine } => {
                plant.faults.overheating = plant.machine(machine).map(|m| (m, 0))
            }
        }
    }

    /// One line for the terminal: what happened and what Millwatch should show.
    pub fn describe(&self) -> String {
        use super::models::{CLASSIFIER, REGRESSOR};
        match self {
            Incident::Recalibration { line } => format!(
                "sensor recalibration on {}: vibration and spindle_current read higher \
                 (expect drift of those features on {CLASSIFIER})",
                LINES[*line]
            ),
            Incident::Rollout { line, version } => format!(
                "{CLASSIFIER} {version} rolled out on {} (expect worse performance of \
                 {version} once labels arrive)",
                LINES[*line]
            ),
            Incident::SensorSilent { line } => format!(
                "air temperature sensor of {} sends no values (expect missing air_temperature \
                 on {CLASSIFIER} and {REGRESSOR})",
                LINES[*line]
            ),
            Incident::SensorSaturated { line } => format!(
                "air temperature sensor of {} reads {} K (expect out-of-range air_temperature)",
                LINES[*line],
                super::plant::OUT_OF_RANGE_K
            ),
            Incident::SensorReplaced { line } => {
                format!("air temperature sensor of {} replaced", LINES[*line])
            }
            Incident::Overheating { machine } => format!(
                "coolant pump of mill-{machine} failed: process temperature climbing (expect \
                 its control chart out of control)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_come_in_order_after_the_calm_start_and_within_the_script() {
        let s = script();
        assert_eq!(s[0].after, CALM);
        assert!(s.windows(2).all(|w| w[0].after < w[1].after));
        assert!(s.iter().all(|i| i.after < SCRIPT_LENGTH));
        assert!(
            s.iter()
                .all(|i| i.tick() >= CALM.as_secs() / TICK.as_secs())
        );
    }

    #[test]
    fn incidents_name_places_the_plant_has() {
        let mut plant = Plant::new(1);
        let mut rollouts = vec!["1.0.0"; LINES.len()];
        for s in script() {
            s.incident.apply(&mut plant, &mut rollouts);
        }
        assert_eq!(plant.faults.recalibrated, vec![0]);
        assert_eq!(rollouts, vec!["1.0.0", "2.0.0", "1.0.0"]);
        assert_eq!(plant.faults.air_sensor, None, "replaced in the end");
        assert_eq!(plant.faults.overheating, Some((6, 0)), "b-3 is machine 6");
    }
}
