//! The commands: `up` (the default), `invoke` and `demo`, with their flags. Output for people
//! goes to stdout; logs go through the runtime's pretty telemetry.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use manifest::Manifest;

use crate::demo::{self, DemoReport, Target};
use crate::invoke;
use crate::measure;
use crate::state::RunningStack;
use crate::{Registry, Stack, StackOptions, table};

/// The local Hearth stack on the official emulators.
#[derive(Debug, Parser)]
#[command(name = "devstack", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub up: UpArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start everything and run until Ctrl-C or SIGTERM (the default).
    Up(UpArgs),
    /// Send a sample request to a function of the running stack.
    Invoke(InvokeArgs),
    /// Run the end-to-end scenario (on the running stack, or on a new one) and check it.
    Demo(DemoArgs),
    /// Write synthetic market-data candles into the running stack (market-stream processes them).
    Candles(CandlesArgs),
}

/// Where and how the stack runs.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Project id (a `demo-` id keeps the Firebase emulators offline).
    #[arg(long, default_value = crate::DEFAULT_PROJECT)]
    pub project: String,
    /// Port of the first function; the others follow in manifest order. 0 picks free ports.
    #[arg(long, default_value_t = crate::DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// The functions manifest.
    #[arg(long, default_value_os_t = crate::default_manifest_path())]
    pub manifest: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Run every scheduled job once right after start-up.
    #[arg(long)]
    pub run_jobs_now: bool,
    /// Run the scheduler's clock N times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Debug, Clone, Args)]
pub struct InvokeArgs {
    /// The function (manifest name). Omit with --list to list every function's examples.
    pub function: Option<String>,
    /// The example to send.
    #[arg(long, short)]
    pub example: Option<String>,
    /// List the examples instead of sending one.
    #[arg(long)]
    pub list: bool,
    /// JSON replacing the sample payload (message data, document fields, HTTP body).
    #[arg(long)]
    pub data: Option<String>,
    /// Base URL of the function (default: from the running stack).
    #[arg(long)]
    pub url: Option<String>,
    /// Project id (default: the running stack's).
    #[arg(long)]
    pub project: Option<String>,
    /// The functions manifest.
    #[arg(long, default_value_os_t = crate::default_manifest_path())]
    pub manifest: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Start a new stack even if one is running.
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CandlesArgs {
    /// Instruments (comma list; market-stream must be configured for them).
    #[arg(long, default_value = "EUR_USD,GBP_USD", value_delimiter = ',')]
    pub instruments: Vec<String>,
    /// Granularity (M1, M5, M15, M30, H1, H4, D, W).
    #[arg(long, default_value = "H1")]
    pub granularity: String,
    /// Candles per instrument.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Candles written per second over all instruments (0: as fast as Firestore takes them).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Leave one period in N without a candle (0: no gaps).
    #[arg(long, default_value_t = 0)]
    pub gap_every: usize,
    /// Make one candle in N impossible (h < l), to see it dead-lettered (0: none).
    #[arg(long, default_value_t = 0)]
    pub bad_every: usize,
    /// Seed of the random walk.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
}

/// Logging: the runtime's pretty format; quiet dependencies unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let mut config =
        runtime::BaseConfig::from_env().unwrap_or_else(|_| runtime::BaseConfig::local());
    config.log_format = runtime::config::LogFormat::Pretty;
    if config.log_filter.is_none() {
        config.log_filter = Some("info,firestore=warn,gcloud_sdk=warn,google_cloud_pubsub=warn,h2=warn,hyper=warn,tower=warn".to_owned());
    }
    let _ = runtime::telemetry::init("devstack", &config);
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, started: Instant) -> ExitCode {
    init_logging();
    let result = match cli.command {
        None => up(cli.up, started).await.map(|()| true),
        Some(Command::Up(args)) => up(args, started).await.map(|()| true),
        Some(Command::Invoke(args)) => invoke_cmd(args).await,
        Some(Command::Demo(args)) => demo_cmd(args).await,
        Some(Command::Candles(args)) => candles_cmd(args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn options(args: &StackArgs) -> StackOptions {
    let mut options = StackOptions::new(Registry::standard());
    options.project.clone_from(&args.project);
    options.base_port = args.base_port;
    options.manifest.clone_from(&args.manifest);
    options
}

async fn up(args: UpArgs, started: Instant) -> anyhow::Result<()> {
    // Register the signal handlers first so an early Ctrl-C still shuts down cleanly.
    let signal = runtime::shutdown_signal()?;
    let mut options = options(&args.stack);
    options.speed = args.speed;
    options.run_jobs_now = args.run_jobs_now;
    options.write_state = true;
    let stack = Stack::up(options).await?;
    out(&table::render(&stack));
    let rss = measure::own_rss_kib().map_or_else(|| "unknown".to_owned(), measure::human_kib);
    out(&format!(
        "Ready in {:.1} s from the command ({:.1} s inside devstack); devstack process RSS {rss} (emulators excluded).\n\
         Try: cargo run -p devstack -- demo    |    cargo run -p devstack -- invoke --list\n\
         Ctrl-C stops everything.",
        started.elapsed().as_secs_f64(),
        stack.ready_in.as_secs_f64()
    ));
    signal.await;
    tracing::info!(
        "stopping: functions, delivery, schedules; the emulators stop with this process"
    );
    stack.shutdown().await;
    Ok(())
}

async fn invoke_cmd(args: InvokeArgs) -> anyhow::Result<bool> {
    let running = RunningStack::load();
    let project = args
        .project
        .clone()
        .or_else(|| running.as_ref().map(|r| r.project.clone()))
        .unwrap_or_else(|| crate::DEFAULT_PROJECT.to_owned());
    let manifest = Manifest::load(&args.manifest)?;
    let data = args
        .data
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .context("--data is not JSON")?;
    let base_url = |function: &str| {
        args.url
            .clone()
            .or_else(|| running.as_ref().and_then(|r| r.functions.get(function).cloned()))
    };
    if args.list || args.example.is_none() {
        let functions: Vec<String> = match &args.function {
            Some(f) => vec![f.clone()],
            None => manifest.functions.keys().cloned().collect(),
        };
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(vec!["function", "example", "path", "what it sends"]);
        for f in functions {
            let url = base_url(&f).unwrap_or_else(|| "http://127.0.0.1:0".to_owned());
            for e in invoke::examples(&manifest, &f, &project, &url, data.as_ref())? {
                t.add_row(vec![e.function, e.name, e.path, e.description]);
            }
        }
        out(&format!(
            "{t}\nSend one: cargo run -p devstack -- invoke <function> --example <name> [--data JSON]"
        ));
        return Ok(true);
    }
    let function = args.function.clone().context("name the function to invoke")?;
    let name = args.example.clone().unwrap_or_default();
    let url = base_url(&function).with_context(|| {
        format!("no running stack serves `{function}`: start one with `cargo run -p devstack`, or pass --url")
    })?;
    let example = invoke::find(
        invoke::examples(&manifest, &function, &project, &url, data.as_ref())?,
        &function,
        &name,
    )?;
    out(&format!("POST {url}{}  ({})", example.path, example.description));
    let http = reqwest::Client::builder().no_proxy().build()?;
    let answer =
        invoke::send(&http, &url, &example).await.with_context(|| format!("sending to {url}"))?;
    out(&format!("HTTP {}\n{}", answer.status, answer.body));
    Ok((200..300).contains(&answer.status))
}

/// Brings a new stack up with `options`, runs the scenario, and stops the stack.
pub async fn demo_on_new_stack(options: StackOptions) -> anyhow::Result<DemoReport> {
    let stack = Stack::up(options).await?;
    let target = Target::from(stack.running());
    let report = demo::run_scenario(&target).await;
    stack.shutdown().await;
    Ok(report)
}

async fn demo_cmd(args: DemoArgs) -> anyhow::Result<bool> {
    let running = if args.fresh { None } else { RunningStack::load() };
    let report = match running {
        Some(r) => {
            tracing::info!(project = %r.project, pid = r.pid, "running the demo on the running stack");
            demo::run_scenario(&Target::from(r)).await
        }
        None => {
            tracing::info!("no running stack: bringing one up for the demo");
            demo_on_new_stack(options(&args.stack)).await?
        }
    };
    out(&report.render());
    Ok(report.passed())
}

async fn candles_cmd(args: CandlesArgs) -> anyhow::Result<bool> {
    let running = RunningStack::load()
        .context("no running stack: start one with `cargo run -p devstack` first")?;
    let granularity: domain::market::Granularity =
        args.granularity.parse().map_err(|e| anyhow::anyhow!("--granularity: {e}"))?;
    let plan = crate::candles::Plan {
        instruments: args.instruments.clone(),
        granularity,
        count: args.count,
        rate: args.rate,
        start: crate::candles::default_start(granularity, args.count),
        gap_every: args.gap_every,
        bad_every: args.bad_every,
        seed: args.seed,
    };
    let db =
        store::Db::new(store::DbConfig::emulator(&running.project, &running.emulators.firestore));
    let written = crate::candles::write(&db, &plan).await?;
    let health = running.functions.get("market-stream").map_or_else(
        || "market-stream is not running".to_owned(),
        |url| format!("{url}/health/streams"),
    );
    out(&format!(
        "Wrote {} candles ({} impossible, {} periods left empty) for {} at {} in {:.1} s.\n\
         market-stream processes them through the Eventarc bridge; stream health: {health}",
        written.candles,
        written.bad,
        written.gaps,
        args.instruments.join(", "),
        granularity,
        written.elapsed.as_secs_f64()
    ));
    Ok(true)
}
