//! The machine's CPU time over a measurement, from `/proc/stat` (Linux; elsewhere nothing is measured).
//!
//! Everything on the machine counts — the service, PostgreSQL, NATS, Redis and the load tool itself — since
//! they all share the same cores: the CPU time per operation is what one operation of a path costs this
//! machine, and comparing a path's cost with its ceilings' shows what the path spends beyond them.

use std::time::Instant;

/// Time the cores spent busy (user, nice, system, irq, softirq) and in all (also idle, iowait and steal),
/// in clock ticks summed over the cores.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ticks {
    busy: u64,
    total: u64,
    cores: usize,
}

/// The aggregate `cpu` line of `/proc/stat` and the number of `cpuN` lines.
fn parse(stat: &str) -> Option<Ticks> {
    let mut lines = stat.lines();
    let fields: Vec<u64> = lines
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = fields[..] else {
        return None;
    };
    let cores = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    let busy = user + nice + system + irq + softirq;
    Some(Ticks {
        busy,
        total: busy + idle + iowait + steal,
        cores: cores.max(1),
    })
}

fn read() -> Option<Ticks> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Started at the beginning of a measurement; [`CpuMeter::stop`] at its end.
pub struct CpuMeter {
    start: Option<Ticks>,
    started: Instant,
}

/// What the machine's cores did over a measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUse {
    /// Share of the cores' time spent busy (0 to 1).
    pub busy: f64,
    /// Busy CPU time, in seconds (summed over the cores).
    pub cpu_seconds: f64,
    pub cores: usize,
}

impl CpuMeter {
    pub fn start() -> Self {
        Self {
            start: read(),
            started: Instant::now(),
        }
    }

    /// The CPU use since [`CpuMeter::start`]; `None` where `/proc/stat` cannot be read.
    pub fn stop(&self) -> Option<CpuUse> {
        between(self.start?, read()?, self.started.elapsed().as_secs_f64())
    }
}

/// CPU use between two readings `seconds` apart: the busy share of the ticks, applied to the cores' time. (The
/// kernel's idle and iowait counts may step back a little: the share is kept within 0 and 1.)
fn between(start: Ticks, end: Ticks, seconds: f64) -> Option<CpuUse> {
    let total = end.total.checked_sub(start.total).filter(|t| *t > 0)?;
    let busy = (end.busy.saturating_sub(start.busy) as f64 / total as f64).min(1.0);
    Some(CpuUse {
        busy,
        cpu_seconds: busy * end.cores as f64 * seconds,
        cores: end.cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 10 50 800 20 5 15 0 0 0
cpu0 50 5 25 400 10 3 7 0 0 0
cpu1 50 5 25 400 10 2 8 0 0 0
intr 12345
ctxt 999
";

    #[test]
    fn busy_is_user_nice_system_irq_softirq_of_all_ticks_and_the_cores_are_counted() {
        let ticks = parse(STAT).unwrap();
        assert_eq!(
            ticks,
            Ticks {
                busy: 180,
                total: 1000,
                cores: 2
            }
        );
        assert_eq!(parse("intr 1\n"), None);
        assert_eq!(parse("cpu  1 2 3\n"), None);
    }

    #[test]
    fn the_busy_share_of_an_interval_applies_to_every_core() {
        let start = Ticks {
            busy: 1_000,
            total: 4_000,
            cores: 2,
        };
        // Over 2 s of two cores (400 ticks at 100 Hz), 300 busy ticks: 75 % busy, 3 CPU-seconds.
        let end = Ticks {
            busy: 1_300,
            total: 4_400,
            cores: 2,
        };
        let used = between(start, end, 2.0).unwrap();
        assert_eq!(used.busy, 0.75);
        assert_eq!(used.cpu_seconds, 3.0);
        assert_eq!(between(end, end, 1.0), None);
    }

    #[test]
    fn this_machine_is_measured() {
        let meter = CpuMeter::start();
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 50 {
            std::hint::black_box(0u64);
        }
        // Linux has `/proc/stat`; elsewhere nothing is measured.
        let used = meter.stop();
        if cfg!(target_os = "linux") {
            let used = used.expect("a reading of /proc/stat");
            assert!((0.0..=1.0).contains(&used.busy), "{used:?}");
            assert!(used.cores >= 1 && used.cpu_seconds >= 0.0, "{used:?}");
        } else {
            assert_eq!(used, None);
        }
    }
}
