//! Start-up benchmark for binaries built on `runtime` (run through `scripts/bench-startup.sh`).
//!
//! For a release binary it measures, `--runs` times, the time from `spawn` to the first
//! `200` on `GET /healthz` (polling a raw `TcpStream` every 0.2 ms), and once the idle RSS
//! (`VmRSS` of `/proc/<pid>/status` after 1 s idle). It measures two baselines in the same run so
//! the figures read as ratios: spawn-to-exit of `/bin/true`, and `python3 -m http.server` to its
//! first `200`. Budgets: start-up under 20 ms, idle memory under 16 MiB.
//!
//! Usage: `bench_startup <binary> [--runs N] [--no-python]`

// A command-line report: printing is the point.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const BUDGET_STARTUP_MS: f64 = 20.0;
const BUDGET_RSS_MIB: f64 = 16.0;
const POLL_EVERY: Duration = Duration::from_micros(200);
const GIVE_UP_AFTER: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    match run() {
        Ok(within_budget) => {
            if within_budget {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("bench_startup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    binary: String,
    runs: usize,
    python: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut binary = None;
    let mut runs = 20;
    let mut python = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs needs a number")?;
            }
            "--no-python" => python = false,
            other if binary.is_none() && !other.starts_with("--") => {
                binary = Some(other.to_owned());
            }
            other => bail!(
                "unexpected argument {other:?}; usage: bench_startup <binary> [--runs N] [--no-python]"
            ),
        }
    }
    let binary = binary.context("usage: bench_startup <binary> [--runs N] [--no-python]")?;
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    Ok(Args { binary, runs, python })
}

fn run() -> anyhow::Result<bool> {
    let args = parse_args()?;
    let name = std::path::Path::new(&args.binary)
        .file_name()
        .map_or(args.binary.clone(), |n| n.to_string_lossy().into_owned());

    // A function's own configuration passes through (project, emulator hosts, HEARTH_*), so
    // any function binary can be measured; everything else is cleared.
    let passed: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("HEARTH_") || k.ends_with("_EMULATOR_HOST") || k == "GOOGLE_CLOUD_PROJECT"
        })
        .filter(|(k, _)| k != "HEARTH_LOG_FORMAT")
        .collect();
    let service = |port: u16| {
        let mut cmd = Command::new(&args.binary);
        cmd.env_clear()
            .envs(passed.iter().cloned())
            .env("PORT", port.to_string())
            .env("HEARTH_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let startup = measure_startup(args.runs, &service, "/healthz")
        .with_context(|| format!("benchmarking {}", args.binary))?;
    let rss = idle_rss_kib(&service, "/healthz")?;

    let true_runs = (0..args.runs)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new("/bin/true").status().context("running /bin/true")?;
            anyhow::ensure!(status.success(), "/bin/true failed");
            Ok(start.elapsed())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let python_cmd = |port: u16| {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let python = if args.python {
        Some((measure_startup(args.runs, &python_cmd, "/")?, idle_rss_kib(&python_cmd, "/")?))
    } else {
        None
    };

    let s = Stats::of(&startup);
    let t = Stats::of(&true_runs);
    println!(
        "start-up: spawn -> first 200 on GET /healthz, {} runs (poll every 0.2 ms)",
        args.runs
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "", "min ms", "median", "p90", "max", "idle RSS"
    );
    println!(
        "{:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.1} MiB",
        name,
        s.min,
        s.median,
        s.p90,
        s.max,
        rss as f64 / 1024.0
    );
    println!(
        "{:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12}",
        "baseline: /bin/true (exit)", t.min, t.median, t.p90, t.max, "-"
    );
    if let Some((py, py_rss)) = &python {
        let p = Stats::of(py);
        println!(
            "{:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.1} MiB",
            "baseline: python3 http.server",
            p.min,
            p.median,
            p.p90,
            p.max,
            *py_rss as f64 / 1024.0
        );
        println!(
            "ratios: median start-up {:.1}x /bin/true, {:.3}x python3 http.server; idle RSS {:.2}x python3",
            s.median / t.median,
            s.median / p.median,
            rss as f64 / *py_rss as f64
        );
    } else {
        println!("ratios: median start-up {:.1}x /bin/true", s.median / t.median);
    }
    let startup_ok = s.p90 < BUDGET_STARTUP_MS;
    let rss_ok = (rss as f64 / 1024.0) < BUDGET_RSS_MIB;
    println!(
        "budgets: start-up p90 {:.2} ms < {BUDGET_STARTUP_MS} ms: {}; idle RSS {:.1} MiB < {BUDGET_RSS_MIB} MiB: {}",
        s.p90,
        if startup_ok { "PASS" } else { "FAIL" },
        rss as f64 / 1024.0,
        if rss_ok { "PASS" } else { "FAIL" }
    );
    Ok(startup_ok && rss_ok)
}

struct Stats {
    min: f64,
    median: f64,
    p90: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Stats { min: ms[0], median: at(0.5), p90: at(0.9), max: ms[ms.len() - 1] }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Kills the child when dropped, so an error never leaves a process behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure_startup(
    runs: usize,
    command: &dyn Fn(u16) -> Command,
    path: &str,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = free_port()?;
        let mut cmd = command(port);
        let start = Instant::now();
        let child = Guard(cmd.spawn().context("spawning")?);
        wait_for_200(port, path, start)?;
        samples.push(start.elapsed());
        drop(child);
    }
    Ok(samples)
}

fn idle_rss_kib(command: &dyn Fn(u16) -> Command, path: &str) -> anyhow::Result<u64> {
    let port = free_port()?;
    let child = Guard(command(port).spawn().context("spawning")?);
    wait_for_200(port, path, Instant::now())?;
    std::thread::sleep(Duration::from_secs(1));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id()))
        .context("reading /proc/<pid>/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS missing from /proc/<pid>/status")?;
    Ok(kib)
}

/// Polls `GET path` on a raw socket until the answer is `200`.
fn wait_for_200(port: u16, path: &str, start: Instant) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut head = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut head).is_ok()
                && head.starts_with(b"HTTP/1.")
                && &head[9..12] == b"200"
            {
                return Ok(());
            }
        }
        if start.elapsed() > GIVE_UP_AFTER {
            bail!("no 200 on {path} from port {port} within {GIVE_UP_AFTER:?}");
        }
        std::thread::sleep(POLL_EVERY);
    }
}
