//! Where the CPU went during a measurement, from Linux's `/proc`: the
//! generator (this process), the target's processes, and everything else on
//! the machine. On a 2-core machine shared by generator and server, this
//! says how much of the machine the server had, and whether something else
//! (a build, another test) was competing: a run with "other" well above
//! zero is noisy. In a virtual machine part of "other" can be *steal*: time
//! the hypervisor gave to other guests while this one wanted to run, which
//! no process here can avoid; it is reported on its own as well.

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU ticks at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    generator: u64,
    target: u64,
    machine_busy: u64,
    /// The machine's steal ticks, where the kernel reports them.
    steal: Option<u64>,
}

/// Average cores used over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    pub generator: f64,
    pub target: f64,
    /// Busy cores not accounted to the generator or the target.
    pub other: f64,
    /// Of `other`, the cores the hypervisor took (steal); `None` where not
    /// measured (reports written before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal: Option<f64>,
}

impl Snapshot {
    /// Now, for this process and the processes `target`.
    pub fn take(target: &[u32]) -> Snapshot {
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        Snapshot {
            generator: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| process_ticks(&s))
                .unwrap_or(0),
            target: target.iter().filter_map(|pid| pid_ticks(*pid)).sum(),
            machine_busy: busy_ticks(&machine).unwrap_or(0),
            steal: steal_ticks(&machine),
        }
    }

    /// Average cores used between `self` and `later`, over `secs` seconds.
    pub fn until(&self, later: &Snapshot, secs: f64) -> CpuUse {
        if secs <= 0.0 {
            return CpuUse::default();
        }
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SEC / secs;
        let generator = later.generator.saturating_sub(self.generator);
        let target = later.target.saturating_sub(self.target);
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let steal = match (self.steal, later.steal) {
            (Some(before), Some(after)) => Some(cores(after.saturating_sub(before))),
            _ => None,
        };
        CpuUse {
            generator: cores(generator),
            target: cores(target),
            other: cores(busy.saturating_sub(generator + target)),
            steal,
        }
    }
}

fn pid_ticks(pid: u32) -> Option<u64> {
    process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime of a `/proc/PID/stat` line (fields 14 and 15; the command
/// name in parentheses may contain spaces, so count from its end).
fn process_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of all CPUs from `/proc/stat`'s first line (all but idle and iowait).
fn busy_ticks(stat: &str) -> Option<u64> {
    let ticks = machine_ticks(stat)?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guests are in user.
    let counted: u64 = ticks.iter().take(8).sum();
    Some(counted - ticks.get(3)? - ticks.get(4)?)
}

/// Steal ticks of all CPUs from `/proc/stat`'s first line (its eighth field).
fn steal_ticks(stat: &str) -> Option<u64> {
    machine_ticks(stat)?.get(7).copied()
}

fn machine_ticks(stat: &str) -> Option<Vec<u64>> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    line.split_whitespace().map(|t| t.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stat_lines_parse() {
        let stat = "11378 (my prog) R 11375 11375 4567 0 -1 4194304 98 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(process_ticks(stat), Some(300));
        assert_eq!(process_ticks("garbage"), None);
    }

    #[test]
    fn machine_stat_lines_parse() {
        let stat = "cpu  1000 0 500 8000 100 0 50 0 0 0\ncpu0 1 2 3\n";
        assert_eq!(busy_ticks(stat), Some(1550));
        let stolen = "cpu  1000 0 500 8000 100 0 50 70 0 0\n";
        assert_eq!((busy_ticks(stolen), steal_ticks(stolen)), (Some(1620), Some(70)));
        assert_eq!(steal_ticks("cpu  1 2 3 4"), None);
    }

    #[test]
    fn use_is_split_between_generator_target_and_the_rest() {
        let before = Snapshot::default();
        let after = Snapshot {
            generator: 100,
            target: 150,
            machine_busy: 300,
            steal: None,
        };
        let usage = before.until(&after, 2.0);
        assert_eq!((usage.generator, usage.target, usage.other), (0.5, 0.75, 0.25));
        assert_eq!(usage.steal, None);
        let (before, after) = (
            Snapshot {
                steal: Some(10),
                ..before
            },
            Snapshot {
                steal: Some(50),
                ..after
            },
        );
        assert_eq!(before.until(&after, 2.0).steal, Some(0.2));
        assert_eq!(before.until(&after, 0.0), CpuUse::default());
    }

    #[test]
    fn this_process_is_visible() {
        let now = Snapshot::take(&[std::process::id()]);
        // On Linux both counters are readable (and read a moment apart here).
        if cfg!(target_os = "linux") {
            assert!(now.generator.abs_diff(now.target) <= 5, "{now:?}");
        }
    }
}
