//! Resource figures the stack reports: the resident memory of a process from `/proc`.

/// `VmRSS` of `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Resident memory of this process in KiB (Linux; `None` elsewhere).
pub fn own_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(parse_vm_rss_kib)
}

/// KiB as a short human string (`12.3 MiB`).
pub fn human_kib(kib: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let mib = kib as f64 / 1024.0;
    format!("{mib:.1} MiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc_status() {
        let text = "Name:\tdevstack\nVmPeak:\t  99 kB\nVmRSS:\t   24576 kB\nThreads:\t8\n";
        assert_eq!(parse_vm_rss_kib(text), Some(24576));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
        assert_eq!(human_kib(24576), "24.0 MiB");
        assert!(own_rss_kib().is_some_and(|k| k > 0));
    }
}
