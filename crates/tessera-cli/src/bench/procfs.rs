//! What /proc says about a process: peak memory and CPU time used.

use std::time::Duration;

/// Peak resident set size (`VmHWM` in /proc/PID/status), in MiB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm_kb(&status).map(|kb| kb as f64 / 1024.0)
}

fn parse_vm_hwm_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User + system CPU time of all threads of a process so far (/proc/PID/stat).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks.saturating_mul(1000) / USER_HZ))
}

/// /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 for user space.
const USER_HZ: u64 = 100;

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields after the last `)`.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time used by a process between two samples, in cores (1.0 = one core busy throughout).
pub fn cores_used(
    before: Option<Duration>,
    after: Option<Duration>,
    wall: Duration,
) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    let wall = wall.as_secs_f64();
    (wall > 0.0).then(|| used.as_secs_f64() / wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        let status =
            "Name:\ttessera\nVmPeak:\t  200000 kB\nVmHWM:\t   34816 kB\nVmRSS:\t 30000 kB\n";
        assert_eq!(parse_vm_hwm_kb(status), Some(34_816));
        assert_eq!(parse_vm_hwm_kb("Name:\tx\n"), None);
    }

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(peak_rss_mb(me).is_some_and(|mb| mb > 0.0));
        assert!(cpu_time(me).is_some());
    }

    #[test]
    fn cores_are_cpu_time_over_wall_time() {
        let c = cores_used(
            Some(Duration::from_secs(1)),
            Some(Duration::from_secs(4)),
            Duration::from_secs(2),
        );
        assert_eq!(c, Some(1.5));
        assert_eq!(
            cores_used(None, Some(Duration::ZERO), Duration::from_secs(1)),
            None
        );
    }
}
