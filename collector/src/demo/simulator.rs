//! The plant over time: every tick each machine makes a part, its sensors report, both models
//! judge it, and the labels of parts made [`LABEL_DELAY`] ago become known. The script's
//! incidents take effect at their tick. A tick is produced without any clock, so the same seed
//! always gives the same requests; `mod.rs` paces them.

use std::collections::VecDeque;
use std::time::Duration;

use fastrand::Rng;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::models::{self, Feedback};
use super::otlp;
use super::plant::{LINES, Plant};
use super::script::{Incident, Scheduled, TICK, script};

/// How long after a part the truth about it (failed or not, the tool's real life) is known.
pub const LABEL_DELAY: Duration = Duration::from_secs(10 * 60);

/// What one tick sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// The tick's number, from 1.
    pub number: u64,
    /// Plant time of the tick, ns since the epoch.
    pub time_ns: u64,
    /// Incidents that took effect at this tick.
    pub incidents: Vec<Incident>,
    pub metrics: ExportMetricsServiceRequest,
    pub logs: ExportLogsServiceRequest,
}

pub struct Simulator {
    plant: Plant,
    /// Drawn for the models, apart from the plant's sensors.
    rng: Rng,
    /// Each line's classifier version.
    rollouts: Vec<&'static str>,
    script: VecDeque<Scheduled>,
    /// Labels not known yet, with the tick they become known at, per line.
    pending: VecDeque<(u64, usize, Feedback)>,
    start_ns: u64,
    tick: u64,
}

impl Simulator {
    /// A plant seeded with `seed` whose first tick is at `start_ns` (plant time).
    pub fn new(seed: u64, start_ns: u64) -> Simulator {
        Simulator {
            plant: Plant::new(seed),
            rng: Rng::with_seed(seed ^ 0x6d69_6c6c_7761_7463),
            rollouts: vec![models::CLASSIFIER_V1; LINES.len()],
            script: script().into(),
            pending: VecDeque::new(),
            start_ns,
            tick: 0,
        }
    }

    /// Plant time of tick `n`.
    pub fn time_of(&self, n: u64) -> u64 {
        self.start_ns + n * TICK.as_nanos() as u64
    }

    /// The next tick.
    pub fn step(&mut self) -> Tick {
        self.tick += 1;
        let n = self.tick;
        let time_ns = self.time_of(n);
        let mut incidents = Vec::new();
        while self.script.front().is_some_and(|s| s.tick() <= n) {
            let Some(s) = self.script.pop_front() else {
                break;
            };
            s.incident.apply(&mut self.plant, &mut self.rollouts);
            incidents.push(s.incident);
        }
        let readings = self.plant.step();
        let metrics = otlp::metrics(&self.plant.machines, &readings, time_ns);
        let label_ticks = LABEL_DELAY.as_secs() / TICK.as_secs();
        let mut per_line = vec![(Vec::new(), Vec::new()); LINES.len()];
        for (m, r) in self.plant.machines.iter().zip(&readings) {
            let version = self.rollouts[m.line];
            let id = |model: &str| format!("{model}-{}-{n:06}", m.id);
            let (c, cf) = models::classify(&mut self.rng, version, id("fc"), &m.id, r);
            let (g, gf) = models::remaining_life(&mut self.rng, id("rul"), &m.id, r);
            per_line[m.line].0.extend([c, g]);
            self.pending.push_back((n + label_ticks, m.line, cf));
            self.pending.push_back((n + label_ticks, m.line, gf));
        }
        while self.pending.front().is_some_and(|(due, ..)| *due <= n) {
            if let Some((_, line, f)) = self.pending.pop_front() {
                per_line[line].1.push(f);
            }
        }
        let logs = otlp::logs(
            per_line
                .iter()
                .enumerate()
                .map(|(line, (inferences, feedback))| {
                    otlp::events(line, inferences, feedback, time_ns)
                })
                .collect(),
        );
        Tick {
            number: n,
            time_ns,
            incidents,
            metrics,
            logs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    const START: u64 = 1_780_000_000_000_000_000;

    fn bytes(t: &Tick) -> (Vec<u8>, Vec<u8>) {
        (t.metrics.encode_to_vec(), t.logs.encode_to_vec())
    }

    #[test]
    fn the_same_seed_sends_the_same_bytes() {
        let (mut a, mut b, mut c) = (
            Simulator::new(42, START),
            Simulator::new(42, START),
            Simulator::new(43, START),
        );
        let mut differs = false;
        for _ in 0..1000 {
            let (ta, tb, tc) = (a.step(), b.step(), c.step());
            assert_eq!(bytes(&ta), bytes(&tb), "tick {}", ta.number);
            differs |= bytes(&ta) != bytes(&tc);
        }
        assert!(differs, "another seed, another plant");
    }

    #[test]
    fn incidents_take_effect_at_their_tick_and_times_follow_the_ticks() {
        let mut s = Simulator::new(1, START);
        let schedule = script();
        let last = schedule.last().map(|s| s.tick()).expect("incidents");
        let mut seen = Vec::new();
        for n in 1..=last {
            let t = s.step();
            assert_eq!(t.time_ns, START + n * TICK.as_nanos() as u64);
            for i in t.incidents {
                seen.push((n, i));
            }
        }
        let want: Vec<(u64, Incident)> = schedule
            .into_iter()
            .map(|s| (s.tick(), s.incident))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn labels_arrive_after_their_delay_once_each() {
        let mut s = Simulator::new(1, START);
        let delay = LABEL_DELAY.as_secs() / TICK.as_secs();
        let (mut inferences, mut labels) = (0, 0);
        for n in 1..=delay * 3 {
            let t = s.step();
            let records = t
                .logs
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records);
            let fb = records
                .clone()
                .filter(|r| r.event_name == "ml.feedback")
                .count();
            inferences += records.filter(|r| r.event_name == "ml.inference").count();
            labels += fb;
            assert_eq!(fb == 0, n <= delay, "tick {n}");
        }
        // Every inference of the first 2 × delay ticks has its label.
        assert_eq!(labels, inferences * 2 / 3);
    }
}
